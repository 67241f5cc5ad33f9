/**
 * weft-cni latency benchmark (not a test): ADD and DEL latency (median, p95) over 100 sequential pods
 * and the throughput of 20 pods attached in parallel (the median of --rounds rounds, the
 * implementations taking turns), for weft-cni run as a Node process per call, for
 * its fast path (the native shim forwarding to a resident `weft cni-server`, as the agent serves it) and
 * for Debian's reference `bridge` + `host-local` plugins, all in the same run, each plugin running in its own node netns exactly as a runtime
 * would run it (`ip netns exec NODE plugin`). Then a breakdown of where weft-cni's time goes.
 *
 *   node dist/bench/cni/latency.js [--pods 100] [--parallel 20] [--rounds 5]
 *
 * WEFT_NETLINK=0 in the environment makes the fast path's server change the kernel through iproute2
 * processes instead of netlink (the Node-per-call plugin is run with a clean environment: netlink).
 *
 * Everything lives in network namespaces named wcni-<random>-…, removed at the end (also on failure).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { runTool } from '../../src/kernel/exec.js';
import { kernelOps } from '../../src/kernel/kernel.js';
import { addNetns, deleteNetns, execIn, spawnIn } from '../../src/kernel/netns.js';
import { writeSubnetEnv } from '../../src/config/subnet-env.js';
import { Cidr, parseIPv4 } from '../../src/util/ipv4.js';
import { execCni, type CniCommand } from '../../src/cni/invoke.js';

const PLUGIN = fileURLToPath(new URL('../../src/cni/main.js', import.meta.url));
const SHIM = fileURLToPath(new URL('../../src/cni/weft-cni', import.meta.url));
const WEFT = fileURLToPath(new URL('../../src/cli/weft.js', import.meta.url));
const REF_DIR = '/usr/lib/cni';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
}
const PODS = arg('pods', 100);
const PAR = arg('parallel', 20);
const ROUNDS = arg('rounds', 5);

interface Impl {
  label: string;
  node: string;
  plugin: string;
  config: Record<string, unknown>;
  pods: string[];
  parPods: string[];
}

const id = Math.random().toString(36).slice(2, 8);
const allNs: string[] = [];
const dirs: string[] = [];
const servers: ChildProcess[] = [];

/** `weft cni-server` in the node's namespace (what the agent runs); resolves once it serves. */
async function startServer(node: string): Promise<void> {
  const child = spawnIn(node, [process.execPath, WEFT, 'cni-server'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  servers.push(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (b: Buffer) => {
      if (b.toString().includes('serving weft-cni requests')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`weft cni-server exited (${String(code)})`)));
  });
}

async function netnsAdd(names: string[]): Promise<void> {
  allNs.push(...names);
  await addNetns(names);
}

async function cleanup(): Promise<void> {
  for (const c of servers) c.kill('SIGTERM');
  if (allNs.length > 0) await deleteNetns(allNs);
  for (const d of dirs) await rm(d, { recursive: true, force: true });
}

async function timed(
  impl: Impl,
  command: CniCommand,
  pod: string,
  env?: Record<string, string>,
): Promise<number> {
  const t0 = process.hrtime.bigint();
  const out = await execCni({
    plugin: impl.plugin,
    command,
    hostNetns: impl.node,
    config: impl.config,
    containerId: `bench-${pod}`,
    netns: `/run/netns/${pod}`,
    ifname: 'eth0',
    path: REF_DIR,
    ...(env && { env }),
  });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (out.exitCode !== 0)
    throw new Error(`${impl.label} ${command} ${pod} failed: ${out.stdout} ${out.stderr}`);
  return ms;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
function p95(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(0.95 * s.length) - 1)]!;
}

async function timeIt(fn: () => Promise<unknown>, n: number): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    xs.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return median(xs);
}

async function main(): Promise<void> {
  const dir = await mkdtemp('/tmp/wcni-bench-');
  dirs.push(dir);
  const subnetFile = `${dir}/subnet.env`;
  await writeSubnetEnv(subnetFile, {
    network: Cidr.parse('10.244.0.0/16')!,
    subnet: Cidr.parse('10.244.1.0/24')!,
    gateway: parseIPv4('10.244.1.1')!,
    mtu: 1450,
    ipMasq: false,
  });
  const mk = (tag: string, n: number) => Array.from({ length: n }, (_, i) => `wcni-${id}-${tag}${i}`);
  const weftConfig = (data: string) => ({
    cniVersion: '1.0.0',
    name: 'weft',
    type: 'weft-cni',
    subnetFile,
    dataDir: `${dir}/${data}`,
  });
  const weft: Impl = {
    label: 'weft-cni (Node per call)',
    node: `wcni-${id}-wnode`,
    plugin: PLUGIN,
    config: weftConfig('weft'),
    pods: mk('w', PODS),
    parPods: mk('wp', PAR),
  };
  const fast: Impl = {
    label: 'weft-cni fast path (shim + server)',
    node: `wcni-${id}-fnode`,
    plugin: SHIM,
    config: weftConfig('fast'),
    pods: mk('f', PODS),
    parPods: mk('fp', PAR),
  };
  const ref: Impl = {
    label: 'bridge+host-local',
    node: `wcni-${id}-rnode`,
    plugin: `${REF_DIR}/bridge`,
    config: {
      cniVersion: '1.0.0',
      name: 'refnet',
      type: 'bridge',
      bridge: 'cni0',
      isGateway: true,
      isDefaultGateway: true,
      mtu: 1450,
      ipam: {
        type: 'host-local',
        dataDir: `${dir}/host-local`,
        ranges: [[{ subnet: '10.244.1.0/24' }]],
        routes: [{ dst: '10.244.0.0/16' }],
      },
    },
    pods: mk('r', PODS),
    parPods: mk('rp', PAR),
  };
  const impls = [weft, fast, ref];
  for (const im of impls) await netnsAdd([im.node, ...im.pods, ...im.parPods]);
  await startServer(fast.node);

  // Warm-up (page cache, bridge creation) so that the first pod does not count bridge set-up.
  for (const im of impls) {
    const [w] = mk(`warm${impls.indexOf(im)}`, 1);
    await netnsAdd([w!]);
    await timed(im, 'ADD', w!);
    await timed(im, 'DEL', w!);
  }

  // Sequential: alternate the implementations pod by pod, so that machine noise hits both alike.
  const seq = new Map(impls.map((im) => [im, { add: [] as number[], del: [] as number[] }]));
  for (let i = 0; i < PODS; i++)
    for (const im of impls) seq.get(im)!.add.push(await timed(im, 'ADD', im.pods[i]!));
  for (let i = 0; i < PODS; i++)
    for (const im of impls) seq.get(im)!.del.push(await timed(im, 'DEL', im.pods[i]!));

  // Parallel throughput: rounds in which the implementations take turns; the median round counts.
  const rounds = new Map(impls.map((im) => [im, { add: [] as number[], del: [] as number[] }]));
  for (let r = 0; r < ROUNDS; r++)
    for (const im of impls) {
      let t0 = process.hrtime.bigint();
      await Promise.all(im.parPods.map((p) => timed(im, 'ADD', p)));
      rounds.get(im)!.add.push(Number(process.hrtime.bigint() - t0) / 1e6);
      t0 = process.hrtime.bigint();
      await Promise.all(im.parPods.map((p) => timed(im, 'DEL', p)));
      rounds.get(im)!.del.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  const par = new Map(
    impls.map((im) => [im, { add: median(rounds.get(im)!.add), del: median(rounds.get(im)!.del) }]),
  );

  const f = (x: number) => x.toFixed(1);
  const figures: [string, (im: Impl) => number, boolean][] = [
    ['ADD median (ms)', (im) => median(seq.get(im)!.add), false],
    ['ADD p95 (ms)', (im) => p95(seq.get(im)!.add), false],
    ['DEL median (ms)', (im) => median(seq.get(im)!.del), false],
    ['DEL p95 (ms)', (im) => p95(seq.get(im)!.del), false],
    [`ADD ${PAR} parallel (pods/s)`, (im) => (PAR * 1000) / par.get(im)!.add, true],
    [`DEL ${PAR} parallel (pods/s)`, (im) => (PAR * 1000) / par.get(im)!.del, true],
  ];
  console.log(
    `\nweft-cni vs Debian bridge+host-local (containernetworking-plugins), ${PODS} sequential pods, ${PAR} parallel (median of ${ROUNDS} rounds); server's kernel access: ${process.env.WEFT_NETLINK === '0' ? 'iproute2' : kernelOps().name}`,
  );
  const mine = [weft, fast];
  console.log(
    `| metric | ${impls.map((im) => im.label).join(' | ')} | ${mine.map((im) => `${im.label} / reference`).join(' | ')} |`,
  );
  console.log(`|---|${impls.map(() => '---:').join('|')}|${mine.map(() => '---:').join('|')}|`);
  for (const [name, get, higherBetter] of figures)
    console.log(
      `| ${name}${higherBetter ? ' (higher is better)' : ''} | ${impls.map((im) => f(get(im))).join(' | ')} | ${mine.map((im) => `${(get(im) / get(ref)).toFixed(2)}×`).join(' | ')} |`,
    );
  const w = seq.get(weft)!;

  // Where weft-cni's time goes: the same harness (execCni under ip netns exec) for a Node script that
  // exits at once (the floor any Node plugin pays), for weft-cni's VERSION (floor + module loading), and
  // the in-plugin phases of ADD from WEFT_CNI_TRACE=1.
  const nullPlugin = `${dir}/null-plugin.mjs`;
  await writeFile(nullPlugin, '#!/usr/bin/env node\nprocess.exit(0);\n', { mode: 0o755 });
  const harness = async (plugin: string, command: CniCommand, n: number): Promise<number> => {
    const xs: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = process.hrtime.bigint();
      await execCni({ plugin, command, hostNetns: weft.node, config: { cniVersion: '1.0.0' } });
      xs.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    return median(xs);
  };
  const nodeFloor = await harness(nullPlugin, 'VERSION', 20);
  const version = await harness(PLUGIN, 'VERSION', 20);
  const netnsExec = await timeIt(() => execIn(weft.node, ['true'], { allowFailure: true }), 20);
  const ipSpawn = await timeIt(() => runTool('ip', ['link', 'show', 'lo'], { netns: weft.node }), 20);
  const phases = new Map<string, number[]>();
  const [tp] = mk('t', 1);
  await netnsAdd([tp!]);
  for (let i = 0; i < 15; i++) {
    const out = await execCni({
      plugin: PLUGIN,
      command: 'ADD',
      hostNetns: weft.node,
      config: weft.config,
      containerId: `trace-${i}`,
      netns: `/run/netns/${tp}`,
      ifname: 'eth0',
      env: { WEFT_CNI_TRACE: '1' },
    });
    let prev = 0;
    for (const line of out.stderr.split('\n')) {
      const m = /^weft-cni trace (.*) ([\d.]+)$/.exec(line);
      if (!m) continue;
      const label = m[1]!;
      const t = Number(m[2]);
      const key =
        label === 'loaded' ? 'Node start-up + module load (performance.now() at first line)' : label;
      (phases.get(key) ?? phases.set(key, []).get(key)!).push(t - prev);
      prev = t;
    }
    await execCni({
      plugin: PLUGIN,
      command: 'DEL',
      hostNetns: weft.node,
      config: weft.config,
      containerId: `trace-${i}`,
      ifname: 'eth0',
    });
  }
  console.log('\nwhere weft-cni ADD time goes (medians, ms)');
  console.log('| part | ms |');
  console.log('|---|---:|');
  console.log(`| weft-cni ADD, whole (from the table above) | ${f(median(w.add))} |`);
  console.log(
    `| empty Node script as a plugin (ip netns exec + Node start-up + exit): the floor | ${f(nodeFloor)} |`,
  );
  console.log(`| weft-cni VERSION (floor + loading weft-cni's modules) | ${f(version)} |`);
  console.log(
    `| of which \`ip netns exec NODE true\` (runtime-side wrapper, paid by both plugins) | ${f(netnsExec)} |`,
  );
  console.log(`| one \`ip\` process (\`ip -n NODE link show lo\`) | ${f(ipSpawn)} |`);
  const names: Record<string, string> = {
    'bridge query': 'bridge query (ip -j -d addr show; skipped when bridge-state matches)',
    'host ops': "node's namespace: veth pair, master, up (netlink, or one ip -batch)",
    'pod ops': "pod's namespace: address, up, routes (netlink, or one ip -n POD -batch)",
    'plugin loaded': 'loading the verbs (plugin.js, lazily): what the resident server has loaded already',
    allocated: 'subnet.env + bridge-state + lock + allocation record',
    done: 'result + sysctl',
  };
  for (const [k, xs] of phases) console.log(`| in-plugin: ${names[k] ?? k} | ${f(median(xs))} |`);
}

main()
  .catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : String(e));
    process.exitCode = 1;
  })
  .finally(() => cleanup());
