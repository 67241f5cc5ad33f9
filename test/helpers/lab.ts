import { randomBytes } from 'node:crypto';
import { labDown, labUp, readState, type LabState } from '../../src/lab/lab.js';
import { validateSpec, type LabSpec } from '../../src/lab/spec.js';
import { run, type RunResult } from '../../src/util/exec.js';

/** A unique lab name for a test (labs of parallel tests never share a namespace). */
export const uniqueName = (prefix = 't'): string => `${prefix}${randomBytes(3).toString('hex')}`.slice(0, 8);

/** Brings a lab up; the returned dispose() removes it (use it in t.after / finally). */
export async function upLab(spec: Partial<LabSpec>): Promise<{ state: LabState; down: () => Promise<void> }> {
  const name = spec.name ?? uniqueName();
  let downed = false;
  const down = async () => {
    if (!downed) await labDown(name);
    downed = true;
  };
  try {
    await labUp(validateSpec({ ...spec, name }));
  } catch (e) {
    await down();
    throw e;
  }
  return { state: await readState(name), down };
}

export function inNs(
  ns: string,
  argv: string[],
  opts: { allowFailure?: boolean; timeoutMs?: number; input?: string } = {},
): Promise<RunResult> {
  return run('ip', ['netns', 'exec', ns, ...argv], { allowFailure: true, timeoutMs: 30_000, ...opts });
}

/** One ping from a namespace; true when a reply came back. */
export async function pings(ns: string, ip: string, count = 1): Promise<boolean> {
  const r = await inNs(ns, ['ping', '-c', String(count), '-W', '1', '-i', '0.2', '-q', ip]);
  return r.code === 0;
}

/** Every pod pings every other pod; returns the pairs that failed as "from->to". */
export async function allPairsFailures(
  state: LabState,
  filter: (from: string, to: string) => boolean = () => true,
): Promise<string[]> {
  const failures: string[] = [];
  for (const a of state.pods) {
    const results = await Promise.all(
      state.pods
        .filter((b) => b !== a && filter(a.node, b.node))
        .map(async (b) => ({ b, ok: (await pings(a.netns, b.ip)) || (await pings(a.netns, b.ip, 2)) })),
    );
    for (const r of results) if (!r.ok) failures.push(`${a.name}->${r.b.name}`);
  }
  return failures;
}

/**
 * Sends exactly `bytes` over one TCP connection from namespace `fromNs` to `toIp` in `toNs` (Node on
 * both ends) and returns how many bytes the receiver counted when the sender closed. The receiver
 * listens on `listenPort` (another port than the one dialled: behind a NodePort, say).
 */
export async function tcpTransfer(
  fromNs: string,
  toNs: string,
  toIp: string,
  bytes: number,
  port = 5201,
  listenPort = port,
): Promise<number> {
  const server = `const n=require('net');let c=0;const s=n.createServer(k=>{k.on('data',d=>c+=d.length);k.on('end',()=>{console.log(c);process.exit(0)})});s.listen(${listenPort},'0.0.0.0',()=>console.error('listening'));setTimeout(()=>process.exit(3),60000)`;
  const client = `const n=require('net');const k=n.connect(${port},'${toIp}',()=>{const b=Buffer.alloc(65536,7);let left=${bytes};const w=()=>{while(left>0){const m=Math.min(left,b.length);left-=m;if(!k.write(b.subarray(0,m)))return k.once('drain',w)}k.end()};w()});k.on('error',e=>{console.error(e.message);process.exit(2)})`;
  const srv = inNs(toNs, [process.execPath, '-e', server], { timeoutMs: 70_000 });
  await new Promise((r) => setTimeout(r, 400));
  const cli = await inNs(fromNs, [process.execPath, '-e', client], { timeoutMs: 60_000 });
  if (cli.code !== 0) throw new Error(`transfer client failed: ${cli.stderr}`);
  const r = await srv;
  return Number(r.stdout.trim());
}

/** The address a TCP server in `toNs` sees as the peer of a connection from `fromNs` (to spot masquerade). */
export async function seenSource(fromNs: string, toNs: string, toIp: string, port = 5202): Promise<string> {
  const server = `const n=require('net');const s=n.createServer(k=>{console.log(k.remoteAddress);k.end();process.exit(0)});s.listen(${port},'0.0.0.0');setTimeout(()=>process.exit(3),20000)`;
  const srv = inNs(toNs, [process.execPath, '-e', server], { timeoutMs: 25_000 });
  await new Promise((r) => setTimeout(r, 400));
  const cli = await inNs(
    fromNs,
    [
      process.execPath,
      '-e',
      `require('net').connect(${port},'${toIp}').on('error',()=>process.exit(2)).resume()`,
    ],
    { timeoutMs: 20_000 },
  );
  void cli;
  return (await srv).stdout.trim().replace(/^::ffff:/, '');
}

/** Polls `fn` until it returns true or `timeoutMs` passes; returns whether it became true. */
export async function eventually(
  fn: () => Promise<boolean>,
  timeoutMs = 15_000,
  everyMs = 200,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await fn()) return true;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return fn();
}

export function etcdctl(state: { etcd: { netns: string | null; endpoints: string[] } }, args: string[]) {
  return inNs(state.etcd.netns!, [
    'env',
    'ETCDCTL_API=3',
    'etcdctl',
    `--endpoints=${state.etcd.endpoints[0]}`,
    ...args,
  ]);
}
