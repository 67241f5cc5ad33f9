/**
 * The cloud coordinator on its own (`weft cloud-routes`): the talk's optimisation for clusters whose
 * overlay is not weft. It reads node → pod-subnet assignments from a source (Flannel's etcd leases, a
 * nodes file / node.spec.podCIDR) and asks the cloud to carry each node's pods natively, through the
 * same provider the agent uses (src/cloud/neutron.ts):
 *  - the node's port accepts its pod subnet (allowed-address-pairs), so host-gw traffic between nodes
 *    of one subnet passes port security;
 *  - the router that serves the node's subnet routes the pod subnet to the node, so nodes on other
 *    subnets (and hosts outside the cluster) reach the pods through the router.
 * What it creates is recorded as owned (one owner per node, as if that node's agent had made it); when
 * a node leaves the source, what it owned is removed; nothing it did not create is ever changed.
 *
 * Reconcile, not replay: every pass reads the whole source and makes the cloud match it (re-adding
 * what drifted away), so a missed watch event or a restart costs one pass, never a stale route.
 * A source that cannot be read changes nothing.
 */
import { describeError } from '../util/errors.js';
import { NeutronApiError } from '../openstack/errors.js';
import type { NeutronClient } from '../openstack/neutron.js';
import { NeutronRouteProvider, recordedOwners, type RecordedOwnership } from './neutron.js';
import type { OwnershipStore } from './ownership.js';
import {
  CloudProviderError,
  type CloudCapabilities,
  type CloudRoute,
  type EnsureResult,
} from './provider.js';
import type { AssignmentSnapshot, AssignmentSource } from './sources.js';

export interface CoordinatorLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}
const silent: CoordinatorLogger = { debug() {}, info() {}, warn() {}, error() {} };

export interface CoordinatorOptions {
  source: AssignmentSource;
  client: NeutronClient;
  /** Ownership records: etcd beside Flannel's leases, or a file (FileOwnershipStore). */
  store: OwnershipStore;
  /** Recorded as the owner cluster of every route and pair. */
  cluster: string;
  /** Full pass period (repairs drift, catches anything a watch missed); default 30 s. */
  resyncSeconds?: number;
  /** Use this router instead of the one found on each node's subnet. */
  routerId?: string;
  /** Behave as if the cloud lacked these extensions (e.g. extraroute-atomic). */
  disableExtensions?: readonly string[];
  /**
   * false: address pairs only, no router routes (`--pairs-only`: Magnum's 2016 fix for host-gw on one
   * subnet — pods of nodes on other subnets and outside hosts stay unreachable). Default true.
   */
  routes?: boolean;
  log?: CoordinatorLogger;
}

/**
 * - `pending`: seen, not programmed yet;
 * - `programmed`: Neutron has the pair and the route (its data plane follows within about a second);
 * - `refused`: the cloud cannot do it (quota, port security, missing extension, no port): the reason
 *   says which, and it is retried every pass;
 * - `error`: a transient failure (API unreachable, 5xx): retried soon.
 */
export type NodeRouteState = 'pending' | 'programmed' | 'refused' | 'error';

/** Per pod subnet: what was done for the pair and for the route. */
export interface SubnetResult {
  podCIDR: string;
  pair: EnsureResult | undefined;
  /**
   * `no-router`: no router serves the node's subnet (same-subnet peers still work through the pair);
   * `pairs-only`: routes were not asked for (CoordinatorOptions.routes false).
   */
  route: EnsureResult | 'no-router' | 'pairs-only' | undefined;
}

export interface NodeRouteStatus {
  node: string;
  nodeIP: string;
  state: NodeRouteState;
  reason?: string;
  port?: string;
  router?: string;
  subnets: SubnetResult[];
  firstSeen: string;
  programmedAt?: string;
  /** From the pass that first saw the node to the pass that programmed it. */
  programmedInMs?: number;
}

export interface CoordinatorStatus {
  source: string;
  cluster: string;
  healthy: boolean;
  ready: boolean;
  /** Why not ready, one line each. */
  reasons: string[];
  sourceError?: string;
  /** Entries the source could not understand (their nodes are held as they are). */
  sourceProblems: string[];
  lastPass?: { at: string; durationMs: number; changed: number };
  passes: number;
  nodes: NodeRouteStatus[];
  /** Nodes gone from the source whose objects wait for a reachable cloud to be removed. */
  pendingReaps: string[];
  /** The latest removals: node and when. */
  reaped: { node: string; at: string }[];
}

/** What one pass did. */
export interface PassReport {
  ok: boolean;
  sourceError?: string;
  nodes: NodeRouteStatus[];
  reaped: string[];
  pendingReaps: string[];
}

/** Refusals: the cloud said no for a reason a person must act on (retrying alone will not help). */
const REFUSALS = new Set([
  'AllowedAddressPairExhausted',
  'RoutesExhausted',
  'ExtensionMissing',
  'AddressPairAndPortSecurityRequired',
  'NodePortNotFound',
  'NoCloudRouter',
  'InvalidCidr',
  'InvalidRoute',
]);

interface Entry {
  status: NodeRouteStatus;
  provider?: NeutronRouteProvider;
  caps?: CloudCapabilities;
  firstSeenMs: number;
}

export class CloudRoutesCoordinator {
  readonly #o: CoordinatorOptions;
  readonly #log: CoordinatorLogger;
  readonly #nodes = new Map<string, Entry>();
  readonly #reaped: { node: string; at: string }[] = [];
  #pendingReaps: string[] = [];
  #sourceError: string | undefined;
  #sourceProblems: string[] = [];
  #lastPass: CoordinatorStatus['lastPass'];
  #passes = 0;
  #dirty = false;
  /** The last provider initialised: reaching the cloud needs one node port, even after that node left. */
  #anyProvider: NeutronRouteProvider | undefined;
  #loop: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #retry: NodeJS.Timeout | undefined;
  #stopWatch: (() => Promise<void>) | undefined;
  #stopped = false;

  constructor(o: CoordinatorOptions) {
    this.#o = o;
    this.#log = o.log ?? silent;
  }

  /** Watches the source and reconciles on every change and every resync period, until stop(). */
  async start(): Promise<void> {
    this.#stopWatch = await this.#o.source.watch((why) => this.kick(why));
    const every = (this.#o.resyncSeconds ?? 30) * 1000;
    this.#timer = setInterval(() => this.kick('resync'), every);
    this.kick('start');
    await this.idle();
  }

  /** Asks for a pass (coalesced: many kicks during a pass make one more pass). */
  kick(why: string): void {
    if (this.#stopped) return;
    this.#log.debug({ why }, 'reconcile requested');
    this.#dirty = true;
    this.#loop ??= (async () => {
      try {
        while (this.#dirty && !this.#stopped) {
          this.#dirty = false;
          await this.pass();
        }
      } finally {
        this.#loop = undefined;
      }
    })();
  }

  /** Resolves when no pass is running or requested. */
  async idle(): Promise<void> {
    while (this.#loop) await this.#loop;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    clearTimeout(this.#retry);
    await this.#stopWatch?.();
    await this.idle();
    await this.#o.source.close();
  }

  /** One full reconcile: read the source, program every node, reap the nodes that left. */
  async pass(): Promise<PassReport> {
    const t0 = Date.now();
    this.#passes++;
    let snap: AssignmentSnapshot;
    try {
      snap = await this.#o.source.read();
    } catch (e) {
      const line = describeError(e);
      if (line !== this.#sourceError)
        this.#log.error(
          { source: this.#o.source.description },
          `source unreadable, nothing changed: ${line}`,
        );
      this.#sourceError = line;
      return { ok: false, sourceError: line, nodes: this.#statuses(), reaped: [], pendingReaps: [] };
    }
    if (this.#sourceError) this.#log.info({}, 'source readable again');
    this.#sourceError = undefined;
    for (const p of snap.problems)
      if (!this.#sourceProblems.includes(p)) this.#log.warn({}, `source entry skipped: ${p}`);
    this.#sourceProblems = snap.problems;

    const desired = new Map<string, { nodeIP: string; cidrs: string[] }>();
    for (const a of snap.nodes) {
      const d = desired.get(a.node) ?? { nodeIP: a.nodeIP, cidrs: [] };
      if (!d.cidrs.includes(a.podCIDR)) d.cidrs.push(a.podCIDR);
      desired.set(a.node, d);
    }
    const owners = await recordedOwners(this.#o.store, this.#o.cluster);
    const held = new Set(snap.held);
    for (const [node, own] of owners) {
      const cidrs = [...own.routes.map((r) => r.destination), ...own.pairs.map((p) => p.ipAddress)];
      if (cidrs.some((c) => snap.heldSubnets.includes(c))) held.add(node);
    }

    let changed = 0;
    await forEachLimited([...desired], 4, async ([node, want]) => {
      const before = this.#nodes.get(node)?.status.state;
      await this.#ensureNode(node, want.nodeIP, want.cidrs, owners.get(node));
      if (this.#nodes.get(node)?.status.state !== before) changed++;
    });

    const gone = new Set(
      [...owners.keys(), ...this.#nodes.keys()].filter((n) => !desired.has(n) && !held.has(n)),
    );
    const reaped: string[] = [];
    const pending: string[] = [];
    for (const node of gone) {
      if (await this.#reap(node, owners.has(node))) reaped.push(node);
      else pending.push(node);
    }
    changed += reaped.length;
    this.#pendingReaps = pending;
    this.#lastPass = { at: new Date().toISOString(), durationMs: Date.now() - t0, changed };
    const nodes = this.#statuses();
    // Transient errors are retried soon, not only at the next resync.
    if (nodes.some((n) => n.state === 'error') || pending.length) {
      clearTimeout(this.#retry);
      this.#retry = setTimeout(() => this.kick('retry'), 5000);
    }
    return { ok: true, nodes, reaped, pendingReaps: pending };
  }

  async #ensureNode(
    node: string,
    nodeIP: string,
    cidrs: string[],
    owned: RecordedOwnership | undefined,
  ): Promise<void> {
    let e = this.#nodes.get(node);
    if (!e) {
      e = {
        status: { node, nodeIP, state: 'pending', subnets: [], firstSeen: new Date().toISOString() },
        firstSeenMs: Date.now(),
      };
      this.#nodes.set(node, e);
      this.#log.info({ node, nodeIP, podCIDRs: cidrs }, 'node seen');
    }
    const st = e.status;
    try {
      if (e.provider && st.nodeIP !== nodeIP) {
        // The node came back with another address (another port): release the old objects first.
        this.#log.info({ node, from: st.nodeIP, to: nodeIP }, 'node address changed');
        await e.provider.releaseAll();
        delete e.provider;
      }
      st.nodeIP = nodeIP;
      const p = await this.#providerFor(e);
      const caps = e.caps!;
      // Records that point elsewhere (another address or port: the node moved while we were down).
      const moved =
        owned?.routes.some((r) => r.nexthop !== nodeIP) ||
        owned?.pairs.some((x) => x.portId !== caps.node.portId);
      if (moved) await p.reapNode(node);
      else if (owned) {
        const wantRoutes = this.#o.routes !== false;
        const staleRoutes = owned.routes.filter((r) => !wantRoutes || !cidrs.includes(r.destination));
        const stalePairs = owned.pairs.filter((x) => !cidrs.includes(x.ipAddress));
        if (staleRoutes.length) await p.removeRoutes(staleRoutes);
        for (const x of stalePairs) await p.removePodSubnetAllowed(x.ipAddress);
        if (staleRoutes.length || stalePairs.length)
          this.#log.info(
            { node, routes: staleRoutes, pairs: stalePairs.map((x) => x.ipAddress) },
            'removed objects of subnets the node no longer has',
          );
      }
      const subnets: SubnetResult[] = cidrs.map((podCIDR) => ({
        podCIDR,
        pair: undefined,
        route: undefined,
      }));
      for (const s of subnets) s.pair = await p.ensurePodSubnetAllowed(s.podCIDR);
      if (this.#o.routes === false) for (const s of subnets) s.route = 'pairs-only';
      else if (caps.router && caps.routes !== 'unavailable') {
        const routes: CloudRoute[] = cidrs.map((destination) => ({ destination, nexthop: nodeIP }));
        const results = await p.ensureRoutes(routes);
        subnets.forEach((s, i) => (s.route = results[i]));
      } else for (const s of subnets) s.route = 'no-router';
      st.subnets = subnets;
      if (st.state !== 'programmed') {
        st.programmedAt = new Date().toISOString();
        st.programmedInMs = Date.now() - e.firstSeenMs;
        this.#log.info(
          { node, nodeIP, subnets, inMs: st.programmedInMs },
          st.state === 'pending' ? 'node programmed' : `node programmed (was ${st.state})`,
        );
      }
      st.state = 'programmed';
      delete st.reason;
    } catch (err) {
      const line = describeError(err);
      // The port or router went away under us: look them up again next pass.
      if (err instanceof NeutronApiError && /^(Port|Router|Subnet)NotFound$/.test(err.type))
        delete e.provider;
      const state: NodeRouteState =
        err instanceof CloudProviderError && REFUSALS.has(err.code) ? 'refused' : 'error';
      if (st.reason !== line || st.state !== state)
        this.#log.error({ node, nodeIP }, `${state === 'refused' ? 'refused' : 'failed'}: ${line}`);
      st.state = state;
      st.reason = line;
      // Partial results are not shown as done.
      st.subnets = cidrs.map((podCIDR) => ({ podCIDR, pair: undefined, route: undefined }));
      delete st.programmedAt;
    }
  }

  /** The node's provider, initialised (finds its port and router) on first use. */
  async #providerFor(e: Entry): Promise<NeutronRouteProvider> {
    if (e.provider) return e.provider;
    const st = e.status;
    const p = new NeutronRouteProvider({
      client: this.#o.client,
      store: this.#o.store,
      cluster: this.#o.cluster,
      node: st.node,
      publicIp: st.nodeIP,
      ...(this.#o.routerId && { routerId: this.#o.routerId }),
      ...(this.#o.disableExtensions && { disableExtensions: this.#o.disableExtensions }),
    });
    e.caps = await p.init();
    e.provider = p;
    this.#anyProvider = p;
    st.port = e.caps.node.portId;
    if (e.caps.router) st.router = e.caps.router.id;
    for (const n of e.caps.notes) this.#log.info({ node: st.node }, n);
    return p;
  }

  /** Removes what a departed node owned; false when no provider can reach the cloud yet (retried). */
  async #reap(node: string, hasRecords: boolean): Promise<boolean> {
    const e = this.#nodes.get(node);
    if (!hasRecords) {
      this.#nodes.delete(node);
      return true;
    }
    // Its own provider if it was ever initialised; else any node's (records say which router and port),
    // also one whose node was reaped a moment ago: its port outlives the reap.
    const p = e?.provider ?? [...this.#nodes.values()].find((x) => x.provider)?.provider ?? this.#anyProvider;
    if (!p) {
      if (!this.#pendingReaps.includes(node))
        this.#log.warn(
          { node },
          'node left; its routes are removed once a node port makes the cloud reachable',
        );
      return false;
    }
    try {
      await p.reapNode(node);
    } catch (err) {
      this.#log.error({ node }, `cannot remove the departed node's routes and pairs: ${describeError(err)}`);
      return false;
    }
    this.#nodes.delete(node);
    this.#reaped.unshift({ node, at: new Date().toISOString() });
    this.#reaped.splice(20);
    this.#log.info({ node }, 'node left: its routes and pairs removed');
    return true;
  }

  /**
   * Removes every route and pair recorded for this cluster (`weft cloud-routes --release`), without
   * programming anything first; the source's nodes only serve to reach the cloud. Returns the nodes.
   */
  async releaseAll(): Promise<{ released: string[]; pending: string[] }> {
    const snap = await this.#o.source.read();
    for (const a of snap.nodes) {
      if (this.#anyProvider) break;
      const e: Entry = {
        status: {
          node: a.node,
          nodeIP: a.nodeIP,
          state: 'pending',
          subnets: [],
          firstSeen: new Date().toISOString(),
        },
        firstSeenMs: Date.now(),
      };
      this.#nodes.set(a.node, e);
      await this.#providerFor(e).catch((err: unknown) =>
        this.#log.warn({ node: a.node }, `cannot reach the cloud through this node: ${describeError(err)}`),
      );
    }
    const released: string[] = [];
    const pending: string[] = [];
    for (const node of (await recordedOwners(this.#o.store, this.#o.cluster)).keys())
      ((await this.#reap(node, true)) ? released : pending).push(node);
    this.#pendingReaps = pending;
    return { released, pending };
  }

  #statuses(): NodeRouteStatus[] {
    return [...this.#nodes.values()]
      .map((e) => structuredClone(e.status))
      .sort((a, b) => a.node.localeCompare(b.node, 'en', { numeric: true }));
  }

  healthy(): boolean {
    if (this.#sourceError) return false;
    const every = (this.#o.resyncSeconds ?? 30) * 1000;
    const last = this.#lastPass ? Date.parse(this.#lastPass.at) : undefined;
    return last !== undefined && Date.now() - last < 3 * every + 60_000;
  }

  status(): CoordinatorStatus {
    const nodes = this.#statuses();
    const reasons = [
      ...(this.#sourceError ? [`source: ${this.#sourceError}`] : []),
      ...(this.#lastPass ? [] : ['no pass finished yet']),
      ...nodes
        .filter((n) => n.state !== 'programmed')
        .map((n) => `${n.node}: ${n.state}${n.reason ? ` (${n.reason})` : ''}`),
      ...this.#pendingReaps.map((n) => `${n}: left, removal pending`),
    ];
    return {
      source: this.#o.source.description,
      cluster: this.#o.cluster,
      healthy: this.healthy(),
      ready: reasons.length === 0,
      reasons,
      ...(this.#sourceError && { sourceError: this.#sourceError }),
      sourceProblems: this.#sourceProblems,
      ...(this.#lastPass && { lastPass: this.#lastPass }),
      passes: this.#passes,
      nodes,
      pendingReaps: [...this.#pendingReaps],
      reaped: [...this.#reaped],
    };
  }
}

async function forEachLimited<T>(items: T[], limit: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
