/**
 * Test fixtures for weft-cni: node and pod network namespaces with unique names (wcni-<random>-…),
 * each removed by t.after even when the test fails; a subnet.env written for the node as the agent
 * would; helpers that run the plugin the way a runtime does (src/cni/invoke.ts).
 */
import type { TestContext } from 'node:test';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { run } from '../../src/util/exec.js';
import { writeSubnetEnv } from '../../src/config/subnet-env.js';
import { Cidr, parseIPv4 } from '../../src/util/ipv4.js';
import { execCni, invokeCni, type CniCommand, type CniOutput } from '../../src/cni/invoke.js';

export const PLUGIN = fileURLToPath(new URL('../../src/cni/main.js', import.meta.url));
/** The native shim (native/cni-shim.c): forwards to a resident server, else runs PLUGIN. */
export const SHIM = fileURLToPath(new URL('../../src/cni/weft-cni', import.meta.url));

export function rand(): string {
  return Math.random().toString(36).slice(2, 8);
}

export async function sh(file: string, args: string[], input?: string): Promise<string> {
  return (await run(file, args, input === undefined ? {} : { input })).stdout;
}

/** Creates network namespaces named wcni-<rand>-<tag>; all are deleted when the test ends. */
export async function makeNetns(t: TestContext, ...tags: string[]): Promise<string[]> {
  const id = rand();
  const names = tags.map((tag) => `wcni-${id}-${tag}`);
  t.after(async () => {
    await run('ip', ['-force', '-batch', '-'], {
      input: names.map((n) => `netns del ${n}`).join('\n') + '\n',
      allowFailure: true,
    });
  });
  await run('ip', ['-batch', '-'], { input: names.map((n) => `netns add ${n}`).join('\n') + '\n' });
  return names;
}

export interface TestNode {
  ns: string;
  dir: string;
  subnetFile: string;
  dataDir: string;
  subnet: Cidr;
  gateway: string;
  /** Plugin config for this node, with overrides. */
  config(extra?: Record<string, unknown>): Record<string, unknown>;
}

export async function writeSubnet(
  path: string,
  subnetWithGw: string,
  network = '10.244.0.0/16',
  mtu = 1450,
): Promise<void> {
  const [gw] = subnetWithGw.split('/');
  await writeSubnetEnv(path, {
    network: Cidr.parse(network)!,
    subnet: Cidr.parse(subnetWithGw)!,
    gateway: parseIPv4(gw!)!,
    mtu,
    ipMasq: false,
  });
}

/** A node netns with lo up, a temp dir holding its subnet.env and the plugin's dataDir. */
export async function makeNode(
  t: TestContext,
  opts: { subnet?: string; network?: string; mtu?: number; version?: string } = {},
): Promise<TestNode> {
  const [ns] = await makeNetns(t, 'node');
  const dir = await mkdtemp('/tmp/wcni-test-');
  t.after(() => rm(dir, { recursive: true, force: true }));
  const subnetFile = `${dir}/subnet.env`;
  const sn = opts.subnet ?? '10.244.1.1/24';
  await writeSubnet(subnetFile, sn, opts.network, opts.mtu);
  await run('ip', ['-n', ns!, 'link', 'set', 'lo', 'up']);
  const dataDir = `${dir}/data`;
  return {
    ns: ns!,
    dir,
    subnetFile,
    dataDir,
    subnet: Cidr.parse(sn)!,
    gateway: sn.split('/')[0]!,
    config: (extra = {}) => ({
      cniVersion: opts.version ?? '1.1.0',
      name: 'weft',
      type: 'weft-cni',
      subnetFile,
      dataDir,
      ...extra,
    }),
  };
}

export interface CallOpts {
  config?: Record<string, unknown>;
  containerId?: string;
  ifname?: string;
  args?: string;
  env?: Record<string, string>;
  netnsPath?: string;
  /** The executable to run (default PLUGIN). */
  plugin?: string;
}

/** Runs the plugin in the node's netns for pod netns `pod` (raw output, whatever the exit code). */
export function callRaw(
  node: TestNode,
  command: CniCommand,
  pod: string | undefined,
  o: CallOpts = {},
): Promise<CniOutput> {
  const netns = o.netnsPath ?? (pod ? `/run/netns/${pod}` : undefined);
  return execCni({
    plugin: o.plugin ?? PLUGIN,
    command,
    hostNetns: node.ns,
    config: o.config ?? node.config(),
    ...(o.containerId !== undefined
      ? { containerId: o.containerId }
      : pod
        ? { containerId: `ctr-${pod}` }
        : {}),
    ...(netns !== undefined && { netns }),
    ifname: o.ifname ?? 'eth0',
    ...(o.args !== undefined && { args: o.args }),
    ...(o.env !== undefined && { env: o.env }),
  });
}

/** Same, parsed; throws CniPluginError on a plugin error. */
export function call(
  node: TestNode,
  command: CniCommand,
  pod: string | undefined,
  o: CallOpts = {},
): Promise<Record<string, unknown>> {
  const netns = o.netnsPath ?? (pod ? `/run/netns/${pod}` : undefined);
  return invokeCni({
    plugin: o.plugin ?? PLUGIN,
    command,
    hostNetns: node.ns,
    config: o.config ?? node.config(),
    ...(o.containerId !== undefined
      ? { containerId: o.containerId }
      : pod
        ? { containerId: `ctr-${pod}` }
        : {}),
    ...(netns !== undefined && { netns }),
    ifname: o.ifname ?? 'eth0',
    ...(o.args !== undefined && { args: o.args }),
    ...(o.env !== undefined && { env: o.env }),
  });
}

export interface IpLinkJson {
  ifname: string;
  mtu: number;
  address: string;
  master?: string;
  flags: string[];
  linkinfo?: { info_kind?: string; info_slave_data?: { hairpin?: boolean } };
  addr_info?: { family: string; local: string; prefixlen: number }[];
}

/** `ip -j -d addr show [dev X]` in a netns. */
export async function links(ns: string, dev?: string): Promise<IpLinkJson[]> {
  const r = await run('ip', ['-n', ns, '-j', '-d', 'addr', 'show', ...(dev ? ['dev', dev] : [])], {
    allowFailure: true,
  });
  return r.code === 0 ? (JSON.parse(r.stdout || '[]') as IpLinkJson[]) : [];
}

export async function routes(ns: string): Promise<{ dst: string; gateway?: string; dev?: string }[]> {
  return JSON.parse(await sh('ip', ['-n', ns, '-j', 'route', 'show'])) as {
    dst: string;
    gateway?: string;
    dev?: string;
  }[];
}

/**
 * An HTTP server inside a netns (Node, run with `ip netns exec`), answering `body` on ip:port. Killed
 * when the test ends. Used as the far end of reachability probes (the machine has no ping).
 */
export async function httpServer(
  t: TestContext,
  ns: string,
  ip: string,
  port: number,
  body: string,
): Promise<ChildProcess> {
  const script = `require('http').createServer((q,s)=>s.end(${JSON.stringify(body)})).listen(${port},${JSON.stringify(ip)},()=>console.log('ready'))`;
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => {
    child.kill('SIGKILL');
  });
  await new Promise<void>((resolve, reject) => {
    let err = '';
    child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    child.stdout!.on('data', (b: Buffer) => {
      if (b.toString().includes('ready')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`server in ${ns} exited ${code}: ${err}`)));
  });
  return child;
}

/** GETs http://ip:port/ from inside a netns with curl; returns the body, or undefined when unreachable. */
export async function httpGet(ns: string, ip: string, port: number): Promise<string | undefined> {
  const r = await run('ip', ['netns', 'exec', ns, 'curl', '-s', '-m', '3', `http://${ip}:${port}/`], {
    allowFailure: true,
  });
  return r.code === 0 ? r.stdout : undefined;
}

/** Runs fn over items with at most `limit` in flight. */
export async function pool<T, R>(
  items: T[],
  limit: number,
  fn: (x: T, i: number) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}

export interface CniErrorJson {
  cniVersion: string;
  code: number;
  msg: string;
  details?: string;
}

/** Parses a plugin error from raw output and checks the spec's shape: JSON on stdout, non-zero exit, no stack trace. */
export function errorOf(out: CniOutput): CniErrorJson {
  if (out.exitCode === 0) throw new Error(`expected a failure, got exit 0: ${out.stdout}`);
  const e = JSON.parse(out.stdout) as CniErrorJson;
  if (typeof e.code !== 'number' || typeof e.msg !== 'string' || typeof e.cniVersion !== 'string') {
    throw new Error(`not a CNI error object: ${out.stdout}`);
  }
  if (/\n\s+at /.test(out.stdout + out.stderr)) throw new Error(`stack trace in output: ${out.stderr}`);
  return e;
}
