import { randomBytes, randomInt } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { agentGet } from '../cli/status-command.js';
import { nftDeleteTable, nftTables } from '../kernel/observe.js';
import { readState, type LabState } from '../lab/lab.js';
import { cmdline } from '../lab/netns.js';
import { REPLY_MAGIC, REQUEST_MAGIC } from '../lab/serve.js';
import { describeError } from '../util/errors.js';
import { Cidr, parseIPv4 } from '../util/ipv4.js';
import { assembleHops, summarize } from './assemble.js';
import { labNamespaces, nameOf, planProbe, type ProbePlan, type WatchedNs } from './lab-target.js';
import { TraceLoader } from './native.js';
import { passages, TRACE_TABLE_PREFIX, traceTable, traceTableName } from './nft-trace.js';
import {
  PROTO_NUMBER,
  type LoaderEvent,
  type Proto,
  type RawHop,
  type TraceResult,
  type TraceSummary,
} from './types.js';

/**
 * `weft trace`: one probe through a lab, followed in every namespace. Set-up (loader, tcx links on
 * every device, nft trace tables) → probe → collection until the reply is back at the sender, a drop
 * has been quiet for a moment, or the time is up → tear-down (the loader exits; the kernel detaches
 * its links and deletes its owner tables) → the assembled trace.
 */
export interface TraceOptions {
  proto?: Proto;
  port?: number;
  /** How long the probe waits for an answer (a lost probe ends with what was seen). */
  timeoutMs?: number;
  /**
   * Trace netfilter rules (default). Each traced rule costs the packet a netlink message, which
   * shows in the per-hop times of nodes with many rules: turn it off for the purest timings.
   */
  netfilter?: boolean;
}

export const CLOCK_NOTE =
  'all namespaces of a host share one kernel clock (CLOCK_MONOTONIC, bpf_ktime_get_ns), so per-hop times on one host are exact';

export async function labTrace(
  labName: string,
  from: string,
  to: string,
  o: TraceOptions = {},
): Promise<TraceResult> {
  const state = await readState(labName);
  const plan = await planProbe(state, from, to, {
    ...(o.proto && { proto: o.proto }),
    ...(o.port !== undefined && { port: o.port }),
  });
  const t0 = performance.now();
  const namespaces = await labNamespaces(state, plan);
  await sweepStaleTraceTables(namespaces.filter((n) => n.nft));
  const warnings: string[] = [];
  const loader = await TraceLoader.start();
  const tmp = await mkdtemp(join(tmpdir(), 'weft-trace-'));
  let setupMs = 0;
  let probeMs = 0;
  let teardownMs = 0;
  let outcome: LoaderEvent | undefined;
  try {
    const sport = randomInt(40000, 60000);
    const nonce = randomBytes(12);
    const sig = Buffer.concat([REQUEST_MAGIC, nonce]);
    const dport = plan.port ?? 0;
    loader.send(
      `probe proto=${PROTO_NUMBER[plan.proto]} daddr=${plan.to.ip} sport=${sport} dport=${dport} sig=${sig.toString('hex')} reply=${REPLY_MAGIC.toString('hex')}`,
    );
    const table = traceTableName(process.pid);
    const script = join(tmp, 'trace.nft');
    await writeFile(script, traceTable(table, plan.proto, nonce, sport));
    for (const n of namespaces) loader.send(`watch /run/netns/${n.name}`);
    const nftNs = o.netfilter === false ? [] : namespaces.filter((n) => n.nft);
    for (const n of nftNs) loader.send(`nft /run/netns/${n.name} ${script}`);
    const path = (n: WatchedNs) => `/run/netns/${n.name}`;
    const ready = await loader.setUp(namespaces.map(path), nftNs.map(path));
    for (const e of loader.events) if (e.ev === 'error') warnings.push(e.message);
    if (!ready) warnings.push('set-up did not finish in 15 s: some devices or namespaces are not watched');
    for (const e of loader.events)
      if (e.ev === 'watching') {
        const n = namespaces.find((x) => `/run/netns/${x.name}` === e.path);
        if (n) n.cookie = e.netns;
      }
    setupMs = performance.now() - t0;
    const tp = performance.now();
    loader.send('arm');
    loader.send(`send /run/netns/${plan.from.netns} ${o.timeoutMs ?? 1500}`);
    outcome = await collect(loader, plan, o.timeoutMs ?? 1500);
    probeMs = performance.now() - tp;
  } finally {
    const td = performance.now();
    await loader.close();
    await rm(tmp, { recursive: true, force: true });
    teardownMs = performance.now() - td;
  }
  const raw = loader.events.filter((e): e is RawHop => e.ev === 'hop');
  const nftLines = new Map<string, string[]>();
  for (const e of loader.events)
    if (e.ev === 'nft') {
      const ns = e.path.replace('/run/netns/', '');
      nftLines.set(ns, [...(nftLines.get(ns) ?? []), e.line]);
    }
  const probeOutcome = outcome && outcome.ev === 'outcome' ? outcome.outcome : 'timeout';
  const hops = assembleHops({
    raw,
    namespaces,
    nft: [...nftLines.entries()].flatMap(([ns, lines]) => passages(ns, lines)),
    proto: plan.proto,
    originNetns: plan.from.netns,
    outcome: probeOutcome,
    nameOf: (ip) => nameOf(state, ip),
    nodeIps: new Set(state.nodes.map((n) => n.publicIP)),
  });
  const summary: TraceSummary = {
    ...summarize(hops, {
      outcome: probeOutcome,
      originNetns: plan.from.netns,
      targetName: answeredBy(plan, hops),
    }),
    dataPath: await dataPaths(state, plan, hops),
  };
  // a probe that did not make it, toward a peer its agent could not give a path: that is why
  const refused = summary.dataPath.find((d) => d.path === 'unreachable');
  if (summary.verdict !== 'delivered' && refused)
    summary.why += `; the agent on ${refused.node} has no path toward ${refused.toward}: ${refused.reason ?? 'unreachable'}`;
  return {
    lab: state.name,
    from: plan.from,
    to: {
      name: plan.to.name,
      ip: plan.to.ip,
      ...(plan.port !== undefined && { port: plan.port }),
      ...(plan.to.service && { service: plan.to.service.name }),
    },
    proto: plan.proto,
    clock: CLOCK_NOTE,
    netfilterTraced: o.netfilter !== false,
    hops,
    summary,
    timings: {
      setupMs: Math.round(setupMs),
      probeMs: Math.round(probeMs),
      teardownMs: Math.round(teardownMs),
    },
    kernel: kernelFootprint(loader, namespaces.length),
    warnings,
  };
}

function kernelFootprint(loader: TraceLoader, namespaces: number): TraceResult['kernel'] {
  const ready = loader.events.find((e) => e.ev === 'ready');
  const bye = loader.events.find((e) => e.ev === 'bye');
  return {
    loaderPid: ready && ready.ev === 'ready' ? ready.pid : 0,
    progIds: ready && ready.ev === 'ready' ? ready.progIds : [],
    links: bye && bye.ev === 'bye' ? bye.links : 0,
    traceTable: traceTableName(process.pid),
    namespaces,
  };
}

function answeredBy(plan: ProbePlan, hops: TraceResult['hops']): string {
  const ep = hops.find((h) => h.nat?.kind === 'DNAT')?.nat?.endpoint;
  return ep && plan.to.service ? `${ep}, endpoint of service ${plan.to.service.name}` : (ep ?? plan.to.name);
}

/**
 * Waits for the end of the probe: the reply back at the sender's namespace (then a short settle for
 * late netfilter lines), a drop with nothing after it for 300 ms, or the sender's own time-out.
 */
async function collect(
  loader: TraceLoader,
  plan: ProbePlan,
  timeoutMs: number,
): Promise<LoaderEvent | undefined> {
  const hardStop = Date.now() + timeoutMs + 1500;
  let lastProgress = Date.now();
  let dropped = false;
  let outcome: LoaderEvent | undefined;
  const originCookie = () =>
    loader.events.find((e) => e.ev === 'watching' && e.path === `/run/netns/${plan.from.netns}`);
  const backHome = () => {
    const c = originCookie();
    return (
      c &&
      c.ev === 'watching' &&
      loader.events.some(
        (e) => e.ev === 'hop' && e.dir === 'reply' && e.kind === 'ingress' && e.netns === c.netns,
      )
    );
  };
  loader.listeners.push((e) => {
    if (e.ev === 'hop') {
      if (e.kind === 'drop') dropped = true;
      else lastProgress = Date.now();
    }
    if (e.ev === 'outcome') outcome = e;
  });
  while (Date.now() < hardStop) {
    if (
      outcome &&
      (backHome() ||
        (outcome.ev === 'outcome' && outcome.outcome !== 'reply' && outcome.outcome !== 'refused'))
    )
      break;
    if (backHome() && !outcome) {
      await loader.waitFor((e) => e.ev === 'outcome', 300);
      continue;
    }
    if (dropped && Date.now() - lastProgress > 300) break;
    await loader.waitFor(() => true, 50);
  }
  loader.send('disarm');
  await new Promise((r) => setTimeout(r, 120)); // late nft monitor lines
  return outcome;
}

/** Removes trace tables left by a tracer that died before the kernel could (owner tables normally go with it). */
export async function sweepStaleTraceTables(namespaces: WatchedNs[]): Promise<number> {
  let swept = 0;
  await Promise.all(
    namespaces.map(async (n) => {
      for (const t of await nftTables(n.name)) {
        if (!t.name.startsWith(TRACE_TABLE_PREFIX)) continue;
        const pid = Number(t.name.slice(TRACE_TABLE_PREFIX.length));
        if (pid && (await cmdline(pid))?.includes('weft')) continue; // a trace running right now
        await nftDeleteTable(n.name, t.family, t.name).catch(() => undefined);
        swept++;
      }
    }),
  );
  return swept;
}

interface AgentStatus {
  backend?: string;
  lease?: { subnet: string };
  peers: { subnet: string; publicIP: string; path: string; reason?: string }[];
}

/** The path each agent chose toward the other end (the request's node, then the reply's), from /status. */
async function dataPaths(
  state: LabState,
  plan: ProbePlan,
  hops: TraceResult['hops'],
): Promise<TraceSummary['dataPath']> {
  const dnat = hops.find((h) => h.nat?.kind === 'DNAT');
  const targetIp = dnat ? dnat.nat!.to.split(':')[0]! : plan.to.ip;
  const nodeOf = (ip: string) =>
    state.nodes.find((n) => n.publicIP === ip) ??
    state.nodes.find((n) => n.name === state.pods.find((p) => p.ip === ip)?.node);
  const pairs: [string, string][] = [
    [plan.from.ip, targetIp],
    [targetIp, plan.from.ip],
  ];
  const out: TraceSummary['dataPath'] = [];
  for (const [a, b] of pairs) {
    const node = nodeOf(a);
    if (!node) continue;
    try {
      const s = JSON.parse((await agentGet(join(node.dir, 'agent.sock'), '/status')).body) as AgentStatus;
      const ip = parseIPv4(b);
      const own = s.lease ? Cidr.parse(s.lease.subnet) : undefined;
      const peer = s.peers.find((p) => ip !== undefined && Cidr.parse(p.subnet)?.contains(ip));
      if (own && ip !== undefined && own.contains(ip))
        out.push({ node: node.name, toward: b, path: 'local (the node bridge)' });
      else if (peer)
        out.push({
          node: node.name,
          toward: `${b} (${peer.subnet} on ${peer.publicIP})`,
          path: peer.path,
          ...(peer.reason && { reason: peer.reason }),
        });
      else
        out.push({
          node: node.name,
          toward: b,
          path: `not a pod subnet (${s.backend ?? '?'} backend: routed by the node)`,
        });
    } catch (e) {
      out.push({ node: node.name, toward: b, path: 'unknown', reason: describeError(e) });
    }
  }
  return out;
}
