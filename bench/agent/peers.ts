/**
 * weft agent scale and idle-cost benchmark (not a test: it prints figures and asserts no timing).
 *
 *   node dist/bench/agent/peers.js [--peers 1000] [--idle-seconds 30] [--settle-seconds 20] [--txn-ops N]
 *
 * 1. Peer scale. One scratch network namespace wba-<random>-node holds a veth pair (eth0 198.18.0.1/16,
 *    its peer eth1 up, both ends inside), a real etcd on 198.18.0.1 and ONE real `weft agent` (started as
 *    the lab starts its agents, src/lab/agents.ts; VXLAN,
 *    Network 10.0.0.0/8, SubnetLen 24). Once /readyz answers 200, N peer leases in Flannel's format
 *    (distinct on-link public IPs 198.18.a.b, distinct VTEP MACs, one etcd lease with a TTL) are written
 *    at once: in one etcd transaction by default (--txn-ops splits them into concurrent transactions).
 *    The write runs in a child of this script inside the namespace (etcd is only reachable there); both
 *    processes read the same monotonic clock. The kernel is polled every 20 ms until it holds N routes
 *    with proto 87 on weft.1, N permanent FDB entries and N permanent neighbours. Printed: write time,
 *    time to programmed (from the first write, from the last acknowledged one), the agent's RSS
 *    before/after/peak and CPU, its reconcile passes (log, /metrics, /status), then its steady state
 *    with N peers over --settle-seconds (a no-op pass every 10 s: against the data plane's model, the
 *    kernel read only on its slow safety resync or after a kernel event).
 * 2. Idle cost. A 3-node flat lab (labUp, 2 pods per node) named bi<hex>; after 5 s, each agent's CPU time
 *    (utime+stime of the node process itself, of the ip/nft/bridge children it reaped, and of the children
 *    still running: its kernel monitors) and RSS over --idle-seconds.
 *
 * Leaves nothing behind: the agent, etcd and the writer are killed, the namespace and the temp directory
 * /tmp/wba-<random>-* removed, and the lab torn down with labDown, in a finally and on SIGINT/SIGTERM.
 * Never touches the machine's own network namespace; no packet leaves the namespaces it creates.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Etcd3, type IRequestOp } from 'etcd3';
import { agentGet } from '../../src/agent/client.js';
import { formatNetworkConfig } from '../../src/config/network-config.js';
import { vxlanDeviceName } from '../../src/backend/types.js';
import { WEFT_ROUTE_PROTO } from '../../src/agent/dataplane.js';
import { startEtcd } from '../../src/lab/etcd-server.js';
import { agentFiles, spawnAgent, waitAgentReady } from '../../src/lab/agents.js';
import { labDown, labUp } from '../../src/lab/lab.js';
import { validateSpec } from '../../src/lab/spec.js';
import { query, Q } from '../../src/kernel/iproute.js';
import { addNetns, destroyNetns, execIn, ipIn, spawnIn } from '../../src/kernel/netns.js';
import { cmdline, killAll } from '../../src/util/process.js';
import { DEFAULT_PREFIX, configKey, subnetsPrefix } from '../../src/store/lease.js';
import { run } from '../../src/util/exec.js';
import { describeError } from '../../src/util/errors.js';

const SELF = fileURLToPath(import.meta.url);
const WRITER_FLAG = '--lease-writer';
const NODE_IP = '198.18.0.1';
const VX = vxlanDeviceName(1);
const POLL_MS = 20;
const RESYNC_SECONDS = 10;
const MAX_PEERS = 250 * 254; // public IPs 198.18.1-254.1-250

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i > 0 ? Number(process.argv[i + 1]) : dflt;
  if (!Number.isInteger(v) || v < 0) throw new Error(`--${name}: expected a non-negative integer`);
  return v;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const msSince = (t: bigint, now = process.hrtime.bigint()) => Number(now - t) / 1e6;
const mb = (kb: number) => (kb / 1024).toFixed(1);
const progress = (msg: string) => console.error(`# ${msg}`);

// ------------------------------------------------------------------------------------------- peers
/** Peer i: subnet 10.(1+i/256).(i%256).0/24 (the agent itself leases in 10.0.x), public IP 198.18.a.b. */
function peer(i: number): { key: string; value: string } {
  const subnet = `10.${1 + (i >> 8)}.${i & 255}.0`;
  const ip = `198.18.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`;
  const mac = ['02', '77', '00', i >> 16, (i >> 8) & 255, i & 255]
    .map((x) => (typeof x === 'number' ? x.toString(16).padStart(2, '0') : x))
    .join(':');
  return {
    key: `${subnetsPrefix(DEFAULT_PREFIX)}${subnet}-24`,
    value: JSON.stringify({
      PublicIP: ip,
      PublicIPv6: null,
      BackendType: 'vxlan',
      BackendData: { VNI: 1, VtepMAC: mac },
    }),
  };
}

// ------------------------------------------------------------------------------------------- writer
/** What the parent asks of the writer, and what the writer answers (one JSON line each on stdout). */
interface WriterSpec {
  endpoint: string;
  peers: number;
  txnOps: number;
  ttlSeconds: number;
}
interface WriterDone {
  t0: string;
  /** When the first and the last transaction were acknowledged. */
  tFirstAck: string;
  tAck: string;
  wall0: number;
  txns: number;
  revision: string;
}

/** Runs inside the namespace: connects, prepares every put, says "ready", waits for "go", writes. */
async function writerMain(spec: WriterSpec): Promise<void> {
  const client = new Etcd3({ hosts: [spec.endpoint] });
  try {
    const { ID } = await client.leaseClient.leaseGrant({ TTL: spec.ttlSeconds, ID: 0 });
    const ops: IRequestOp[] = Array.from({ length: spec.peers }, (_, i) => {
      const p = peer(i);
      return { request_put: { key: Buffer.from(p.key), value: Buffer.from(p.value), lease: ID } };
    });
    const txns: IRequestOp[][] = [];
    for (let i = 0; i < ops.length; i += spec.txnOps) txns.push(ops.slice(i, i + spec.txnOps));
    await client.get(configKey(DEFAULT_PREFIX)).string(); // the channel is up before the clock starts
    process.stdout.write(JSON.stringify({ ready: true }) + '\n');
    const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
    if ((await lines.next()).value !== 'go') throw new Error('writer: expected "go"');
    const t0 = process.hrtime.bigint();
    const wall0 = Date.now();
    let tFirstAck: bigint | undefined;
    const res = await Promise.all(
      txns.map(async (success) => {
        const r = await client.kv.txn({ success });
        tFirstAck ??= process.hrtime.bigint();
        return r;
      }),
    );
    const tAck = process.hrtime.bigint();
    const revision = res.map((r) => BigInt(r.header.revision)).reduce((a, b) => (a > b ? a : b), 0n);
    const done: WriterDone = {
      t0: String(t0),
      tFirstAck: String(tFirstAck ?? tAck),
      tAck: String(tAck),
      wall0,
      txns: txns.length,
      revision: String(revision),
    };
    process.stdout.write(JSON.stringify(done) + '\n');
  } finally {
    client.close();
  }
}

// ------------------------------------------------------------------------------------------- cleanup
const scratch: { ns?: string; dir?: string; agentPid?: number; etcdPid?: number } = {};
let labName: string | undefined;

async function cleanupOnce(): Promise<void> {
  const pids: number[] = [];
  for (const [pid, re] of [
    [scratch.agentPid, /weft\.js agent/],
    [scratch.etcdPid, /etcd/],
  ] as const) {
    const cl = pid ? await cmdline(pid) : undefined;
    if (pid && cl && re.test(cl)) pids.push(pid); // never a recycled pid
  }
  await killAll(pids);
  scratch.agentPid = scratch.etcdPid = undefined;
  if (scratch.ns) {
    await destroyNetns(scratch.ns); // also kills whatever still runs inside (the writer)
    scratch.ns = undefined;
  }
  if (scratch.dir) {
    await rm(scratch.dir, { recursive: true, force: true });
    scratch.dir = undefined;
  }
  if (labName) {
    await labDown(labName);
    labName = undefined;
  }
}

let cleaning = Promise.resolve();
/** Serialised and idempotent: the finally and a signal may both ask for it. */
function cleanup(): Promise<void> {
  const step = () => cleanupOnce().catch((e: unknown) => console.error(`cleanup: ${describeError(e)}`));
  cleaning = cleaning.then(step, step);
  return cleaning;
}

// ------------------------------------------------------------------------------------------- /proc
interface ProcSample {
  rssKb: number;
  hwmKb: number;
  /** utime+stime and cutime+cstime (reaped children), in clock ticks. */
  ticks: number;
  childTicks: number;
  /** Children still running (the agent's kernel monitors): their utime+stime and RSS, summed. */
  liveTicks: number;
  liveRssKb: number;
  live: number;
}

async function procStat(pid: number): Promise<{ rssKb: number; hwmKb: number; f: number[] }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const f = stat
    .slice(stat.lastIndexOf(')') + 2)
    .split(' ')
    .map(Number); // f[0] is field 3 (state): utime is field 14
  return { rssKb: kb('VmRSS'), hwmKb: kb('VmHWM'), f };
}

async function sample(pid: number): Promise<ProcSample> {
  const me = await procStat(pid);
  const kids = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => ''))
    .split(/\s+/)
    .filter(Boolean)
    .map(Number);
  let liveTicks = 0;
  let liveRssKb = 0;
  let live = 0;
  for (const k of kids) {
    const c = await procStat(k).catch(() => undefined);
    if (!c) continue;
    live++;
    liveTicks += c.f[11]! + c.f[12]!;
    liveRssKb += c.rssKb || 0;
  }
  return {
    rssKb: me.rssKb,
    hwmKb: me.hwmKb,
    ticks: me.f[11]! + me.f[12]!,
    childTicks: me.f[13]! + me.f[14]!,
    liveTicks,
    liveRssKb,
    live,
  };
}

/** The agent's node process: `ip netns exec` execs, so the pid spawned is node itself; checked. */
async function nodeProcess(pid: number): Promise<number> {
  const isAgent = (cl: string | undefined) => !!cl && /weft\.js agent/.test(cl) && !cl.startsWith('ip ');
  if (isAgent(await cmdline(pid))) return pid;
  const kids = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
  for (const k of kids.split(/\s+/).filter(Boolean).map(Number)) if (isAgent(await cmdline(k))) return k;
  throw new Error(`pid ${pid} is not a weft agent (${(await cmdline(pid)) ?? 'gone'})`);
}

// ------------------------------------------------------------------------------------------- agent
interface Metrics {
  reconciles: number;
  reconcileSeconds: number;
}
interface ReconcileReport {
  added: number;
  removed: number;
  unchanged: number;
  failures: unknown[];
  durationMs: number;
  at: string;
}
interface AgentStatus {
  lease?: { subnet: string };
  peers: unknown[];
  lastReconcile?: ReconcileReport;
}

async function metrics(socket: string): Promise<Metrics> {
  const { body } = await agentGet(socket, '/metrics');
  const get = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(body)?.[1] ?? NaN);
  return {
    reconciles: get('weft_reconcile_duration_seconds_count'),
    reconcileSeconds: get('weft_reconcile_duration_seconds_sum'),
  };
}

/** /metrics once the agent has stopped reconciling (the count unchanged for 200 ms; at most 5 s). */
async function settledMetrics(socket: string): Promise<Metrics> {
  let m = await metrics(socket);
  for (let i = 0; i < 25; i++) {
    await sleep(200);
    const again = await metrics(socket);
    if (again.reconciles === m.reconciles) return again;
    m = again;
  }
  return m;
}

async function status(socket: string): Promise<AgentStatus> {
  return JSON.parse((await agentGet(socket, '/status')).body) as AgentStatus;
}

/** "data path reconciled" lines of the agent's JSON log at or after `sinceMs` (epoch). */
async function reconcilePasses(log: string, sinceMs: number) {
  const passes: { at: number; added: number; unchanged: number; failures: number }[] = [];
  for (const line of (await readFile(log, 'utf8')).split('\n')) {
    if (!line.includes('data path reconciled')) continue;
    const e = JSON.parse(line) as { time?: string; added?: number; unchanged?: number; failures?: number };
    const at = Date.parse(e.time ?? '');
    if (at >= sinceMs)
      passes.push({ at, added: e.added ?? 0, unchanged: e.unchanged ?? 0, failures: e.failures ?? 0 });
  }
  return passes;
}

// ------------------------------------------------------------------------------------------- kernel
const countRoutes = async (ns: string) =>
  (await query(Q.routes(['proto', String(WEFT_ROUTE_PROTO)]), ns)).filter((r) => r.dev === VX).length;
const countFdb = async (ns: string) =>
  (await query(Q.fdb(VX), ns)).filter((f) => f.dst !== undefined && f.state === 'permanent').length;
const countNeigh = async (ns: string) =>
  (await query(Q.neighs(VX), ns)).filter((n) => (n.state ?? []).includes('PERMANENT')).length;

/**
 * Polls every POLL_MS until the namespace holds n weft routes, FDB entries and permanent neighbours.
 * Routes are polled alone (one `ip` per poll, to disturb the agent little): the agent writes FDB
 * entries first and routes last, so FDB and neighbours are checked once the routes are all there.
 */
async function waitProgrammed(ns: string, n: number, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  let polls = 0;
  let firstRoute: bigint | undefined;
  let lastPollMs = 0;
  let routes = 0;
  for (;;) {
    const start = process.hrtime.bigint();
    routes = await countRoutes(ns);
    polls++;
    if (routes > 0 && firstRoute === undefined) firstRoute = process.hrtime.bigint();
    if (routes >= n) {
      const [fdb, neigh] = await Promise.all([countFdb(ns), countNeigh(ns)]);
      if (fdb >= n && neigh >= n) {
        const at = process.hrtime.bigint();
        return { at, firstRoute: firstRoute ?? at, polls, pollMs: msSince(start, at) };
      }
    }
    lastPollMs = msSince(start);
    if (Date.now() > deadline)
      throw new Error(`not programmed after ${timeoutMs / 1000} s: ${routes}/${n} routes`);
    await sleep(Math.max(0, POLL_MS - lastPollMs));
  }
}

// ------------------------------------------------------------------------------------------- part 1
async function peerScale(n: number, txnOps: number, settleSeconds: number): Promise<void> {
  const id = randomBytes(3).toString('hex');
  const ns = `wba-${id}-node`;
  scratch.dir = await mkdtemp(`/tmp/wba-${id}-`);
  const dir = scratch.dir;
  scratch.ns = ns;
  await addNetns([ns]);
  await ipIn(
    ns,
    [
      'link set lo up',
      'link add eth0 type veth peer name eth1',
      `addr add ${NODE_IP}/16 dev eth0`,
      'link set eth1 up',
      'link set eth0 up',
    ],
    'cannot build the scratch namespace',
  );

  // One transaction of n puts needs --max-txn-ops n (default 128) and room for its bytes (~200 B each).
  const etcd = await startEtcd({
    dir: join(dir, 'etcd'),
    host: NODE_IP,
    netns: ns,
    extraArgs: [
      `--max-txn-ops=${Math.max(128, txnOps)}`,
      `--max-request-bytes=${Math.max(1572864, txnOps * 512)}`,
    ],
  });
  scratch.etcdPid = etcd.pid;
  const network = formatNetworkConfig({ network: '10.0.0.0/8', subnetLen: 24, backend: { type: 'vxlan' } });
  await execIn(ns, [
    'env',
    'ETCDCTL_API=3',
    'etcdctl',
    `--endpoints=${etcd.endpoint}`,
    'put',
    configKey(DEFAULT_PREFIX),
    network,
  ]);
  progress(`namespace ${ns}: etcd ${etcd.endpoint}, network config ${network}`);

  const { socket, log } = agentFiles(dir);
  const agent = await spawnAgent({
    netns: ns,
    dir,
    args: [
      `--etcd-endpoints=${etcd.endpoint}`,
      '--iface=eth0',
      `--subnet-file=${join(dir, 'subnet.env')}`,
      `--status-socket=${socket}`,
      '--subnet-lease-ttl=86400',
      `--resync=${RESYNC_SECONDS}`,
      '--ip-masq',
    ],
  });
  scratch.agentPid = agent.pid;
  await waitAgentReady({ name: ns, dir, pid: agent.pid });
  const pid = await nodeProcess(agent.pid);
  scratch.agentPid = pid;
  const own = (await status(socket)).lease?.subnet;
  const peerSubnets = new Set(Array.from({ length: n }, (_, i) => peer(i).key.split('/').pop()));
  if (!own || peerSubnets.has(own.replace('/', '-')))
    throw new Error(`the agent's own subnet ${own ?? '?'} collides with the peers'`);
  progress(`agent ready (pid ${pid}, subnet ${own}); writing ${n} peer leases`);
  await sleep(1000); // let the start-up reconcile and the first timers pass
  const before = await sample(pid);
  const mBefore = await metrics(socket);

  // The writer runs inside the namespace (etcd listens there only); same monotonic clock as ours.
  const spec: WriterSpec = { endpoint: etcd.endpoint, peers: n, txnOps, ttlSeconds: 3600 };
  const writer = spawnIn(ns, [process.execPath, SELF, WRITER_FLAG, JSON.stringify(spec)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let writerErr = '';
  writer.stderr!.on('data', (b: Buffer) => (writerErr += b.toString()));
  const lines = createInterface({ input: writer.stdout! })[Symbol.asyncIterator]();
  const next = async <T>(): Promise<T> => {
    const l = await lines.next();
    if (l.done) throw new Error(`the lease writer exited: ${writerErr.trim()}`);
    return JSON.parse(l.value) as T;
  };
  await next<{ ready: boolean }>();
  writer.stdin!.end('go\n');
  const [done, prog] = await Promise.all([next<WriterDone>(), waitProgrammed(ns, n, 300_000 + n * 100)]);
  const after = await sample(pid);
  const mAfter = await settledMetrics(socket); // the last pass may still be updating nftables
  const st = await status(socket);
  const t0 = BigInt(done.t0);
  const tAck = BigInt(done.tAck);
  const passes = await reconcilePasses(log, done.wall0 - 5);

  // Steady state with n peers: no-op resyncs every RESYNC_SECONDS.
  progress(`programmed; steady state with ${n} peers for ${settleSeconds} s`);
  const s0 = await sample(pid);
  const ms0 = await metrics(socket);
  const tS = process.hrtime.bigint();
  await sleep(settleSeconds * 1000);
  const s1 = await sample(pid);
  const ms1 = await metrics(socket);
  const settleMs = msSince(tS);
  const idle = await status(socket);
  const tck = await clockTicks();

  const f = (x: number) => x.toFixed(1);
  const cpuS = (a: number, b: number) => (b - a) / tck;
  console.log(`\nweft agent, ${n} peer leases written at once (${done.txns} etcd transaction(s))`);
  console.log('| metric | value |');
  console.log('|---|---:|');
  console.log(`| write: first put sent → last transaction acknowledged (ms) | ${f(msSince(t0, tAck))} |`);
  if (done.txns > 1)
    console.log(`| … first transaction acknowledged (ms) | ${f(msSince(t0, BigInt(done.tFirstAck)))} |`);
  console.log(
    `| first weft route seen in the kernel, from the first write (ms) | ${f(msSince(t0, prog.firstRoute))} |`,
  );
  console.log(
    `| all ${n} routes + FDB + neighbours programmed, from the first write (ms) | ${f(msSince(t0, prog.at))} |`,
  );
  console.log(`| … from the last write acknowledged (ms) | ${f(msSince(tAck, prog.at))} |`);
  console.log(`| poll resolution: interval / last poll took (ms) | ${POLL_MS} / ${f(prog.pollMs)} |`);
  console.log(`| agent RSS before (MB) | ${mb(before.rssKb)} |`);
  console.log(`| agent RSS after (MB) | ${mb(after.rssKb)} |`);
  console.log(`| agent peak RSS, VmHWM, before → after (MB) | ${mb(before.hwmKb)} → ${mb(after.hwmKb)} |`);
  console.log(
    `| agent CPU during the burst: own / reaped children (s) | ${f(cpuS(before.ticks, after.ticks))} / ${f(cpuS(before.childTicks, after.childTicks))} |`,
  );
  const dCount = mAfter.reconciles - mBefore.reconciles;
  console.log(
    `| reconciles during the burst (weft_reconcile_duration_seconds count / sum s) | ${dCount} / ${(mAfter.reconcileSeconds - mBefore.reconcileSeconds).toFixed(3)} |`,
  );
  const lr = st.lastReconcile;
  if (lr)
    console.log(
      `| last reconcile (/status): duration ms, added/removed/unchanged/failures | ${f(lr.durationMs)}; ${lr.added}/${lr.removed}/${lr.unchanged}/${lr.failures.length} |`,
    );
  console.log(`| peers in /status | ${st.peers.length} |`);
  console.log(`| agent RSS ${settleSeconds} s later (MB) | ${mb(s1.rssKb)} (peak ${mb(s1.hwmKb)}) |`);
  console.log(
    `| … its running children (kernel monitors): count, RSS (MB) | ${s1.live}, ${mb(s1.liveRssKb)} |`,
  );
  const pctOf = (ticks: number) => (100 * (ticks / tck) * 1000) / settleMs;
  const ownPct = pctOf(s1.ticks - s0.ticks);
  const reaped = pctOf(s1.childTicks - s0.childTicks);
  const running = pctOf(Math.max(0, s1.liveTicks - s0.liveTicks));
  console.log(
    `| steady state with ${n} peers, % of a core: own / reaped children (ip, nft, bridge) / running children (monitors) | ${f(ownPct)} / ${f(reaped)} / ${f(running)} |`,
  );
  console.log(`| steady state: agent + children (% of a core) | ${f(ownPct + reaped + running)} |`);
  const idleCount = ms1.reconciles - ms0.reconciles;
  console.log(
    `| steady state: no-op resyncs, mean duration (ms) | ${idleCount}, ${idleCount ? f((1000 * (ms1.reconcileSeconds - ms0.reconcileSeconds)) / idleCount) : '-'} |`,
  );
  if (idle.lastReconcile)
    console.log(
      `| steady state: last resync (/status) ms, unchanged | ${f(idle.lastReconcile.durationMs)}, ${idle.lastReconcile.unchanged} |`,
    );
  console.log('\nreconcile passes that changed the kernel (agent log), from the first write');
  console.log('| at (ms, log clock) | added | unchanged | failures |');
  console.log('|---:|---:|---:|---:|');
  for (const p of passes.slice(0, 12))
    console.log(`| +${p.at - done.wall0} | ${p.added} | ${p.unchanged} | ${p.failures} |`);
  if (passes.length > 12) console.log(`| … ${passes.length - 12} more | | | |`);
}

async function clockTicks(): Promise<number> {
  return Number((await run('getconf', ['CLK_TCK'])).stdout.trim()) || 100;
}

// ------------------------------------------------------------------------------------------- part 2
async function idleCost(idleSeconds: number): Promise<void> {
  const name = `bi${randomBytes(3).toString('hex')}`;
  labName = name;
  progress(`lab ${name}: 3 nodes, flat underlay, 2 pods per node`);
  const state = await labUp(validateSpec({ name, nodes: 3, podsPerNode: 2 }));
  await sleep(5000);
  const nodes = await Promise.all(
    state.nodes.map(async (n) => ({
      name: n.name,
      pid: await nodeProcess(n.agentPid),
      socket: join(n.dir, 'agent.sock'),
    })),
  );
  const all = [...nodes.map((n) => n.pid), state.etcd.pid];
  progress(`sampling ${nodes.length} agents for ${idleSeconds} s`);
  const b = await Promise.all(all.map(sample));
  const mb0 = await Promise.all(nodes.map((n) => metrics(n.socket)));
  const t = process.hrtime.bigint();
  await sleep(idleSeconds * 1000);
  const a = await Promise.all(all.map(sample));
  const mb1 = await Promise.all(nodes.map((n) => metrics(n.socket)));
  const secs = msSince(t) / 1000;
  const tck = await clockTicks();
  const pct = (x: number, y: number) => ((100 * (y - x)) / tck / secs).toFixed(2);

  console.log(`\nidle cost: lab ${name} (3 nodes, 2 pods each, resync 10 s), ${secs.toFixed(1)} s sampled`);
  console.log(
    '| process | pid | CPU own (%) | CPU reaped children: ip/nft/bridge (%) | CPU running children: monitors (%) | RSS (MB) | peak (MB) | children RSS (MB) | reconciles |',
  );
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  all.forEach((pid, i) => {
    const label = i < nodes.length ? `agent ${nodes[i]!.name}` : 'etcd (shared)';
    const rec = i < nodes.length ? String(mb1[i]!.reconciles - mb0[i]!.reconciles) : '';
    const live = pct(b[i]!.liveTicks, Math.max(b[i]!.liveTicks, a[i]!.liveTicks));
    console.log(
      `| ${label} | ${pid} | ${pct(b[i]!.ticks, a[i]!.ticks)} | ${pct(b[i]!.childTicks, a[i]!.childTicks)} | ${live} | ${mb(a[i]!.rssKb)} | ${mb(a[i]!.hwmKb)} | ${mb(a[i]!.liveRssKb)} | ${rec} |`,
    );
  });
}

// ------------------------------------------------------------------------------------------- main
async function main(): Promise<void> {
  const n = arg('peers', 1000);
  const idleSeconds = arg('idle-seconds', 30);
  const settleSeconds = arg('settle-seconds', 20);
  const txnOps = arg('txn-ops', n) || n;
  if (n < 1 || n > MAX_PEERS) throw new Error(`--peers: between 1 and ${MAX_PEERS}`);
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    process.on(sig, () => {
      console.error(`${sig}: cleaning up`);
      // Twice: a step still running when the signal came may have created something meanwhile.
      void cleanup()
        .then(cleanup)
        .finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
    });
  progress(
    `${cpus().length} cores, load average ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}, node ${process.version}`,
  );
  try {
    await peerScale(n, txnOps, settleSeconds);
    await cleanup(); // free the machine before part 2
    await idleCost(idleSeconds);
  } finally {
    await cleanup();
  }
}

if (process.argv[2] === WRITER_FLAG) {
  writerMain(JSON.parse(process.argv[3] ?? '{}') as WriterSpec).then(
    () => process.exit(0),
    (e: unknown) => {
      console.error(describeError(e));
      process.exit(1);
    },
  );
} else {
  main().catch((e: unknown) => {
    console.error(describeError(e));
    process.exitCode = 1;
  });
}
