import type { PeerPlan } from '../backend/types.js';
import { formatIPv4, type Cidr } from '../util/ipv4.js';
import type { Logger } from '../util/log.js';
import type { Timers } from '../util/timers.js';
import type { ProbeAnswer } from './path-probe.js';

/**
 * Ready means reachable: per peer, whether pods on this node can reach pods on it now.
 *
 *  - `ready`: the path is programmed and, when the cloud carries it, the data path has answered;
 *  - `pending`: being set up — a cloud path whose probe has not answered yet (Neutron's agents take
 *    0.3–1.2 s after an API change, sometimes more), or a peer whose cloud setup is under way;
 *  - `refused`: no path can carry it, with the reason (host-gw and an off-link peer, a cloud quota, …),
 *    or a pending peer that stayed pending for PENDING_LIMIT_MS (named as such).
 *
 * A cloud path is probed from this node's pod subnet .0 to the peer's .0 (path-probe.ts): the request
 * and the answer cross this node's port, the router or the shared subnet, and the peer's port, with
 * pod-range addresses both ways — what a pod's packets cross. Programming it is not enough: a route
 * on the router or an address pair reaches Neutron's data plane only when its agents next poll.
 *
 * Probing is bounded, whatever the cluster's size: only peers not reachable yet are probed (pending,
 * and refused after the pending limit, slowly, so that a late path still turns ready); a ready peer is
 * not probed again — a change of its path (the cloud coordinator's resync sees Neutron) replans it,
 * and a new plan starts it over. Each peer backs off (250 ms doubling to 2 s), and the node sends at
 * most PROBES_PER_SECOND probes, MAX_IN_FLIGHT at a time, the longest-waiting first.
 */
export type PeerState = 'pending' | 'ready' | 'refused';

export interface PeerReadiness extends Omit<PeerPlan, 'subnet'> {
  subnet: string;
  state: PeerState;
  /** When the peer entered its state. */
  since: string;
}

/** How long a peer may stay pending before it counts as refused (readiness no longer waits for it). */
export const PENDING_LIMIT_MS = 60_000;
export const PROBES_PER_SECOND = 50;
export const MAX_IN_FLIGHT = 16;
const TICK_MS = 250;
const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 2000;
const REFUSED_RETRY_MS = 5000;

interface Tracked {
  plan: PeerPlan;
  /** The plan's identity: a change of path, next hop or reason restarts the peer's readiness. */
  key: string;
  state: PeerState;
  reason: string | undefined;
  since: number;
  probed: boolean;
  nextProbe: number;
  retryMs: number;
  inFlight: boolean;
}

export interface ProbeTarget {
  /** This node's probe source (its pod subnet's .0), when it has a lease. */
  source(): string | undefined;
  probe(source: string, target: string): Promise<ProbeAnswer>;
}

export interface ProbeLimits {
  pendingLimitMs: number;
  perSecond: number;
  inFlight: number;
}

export class PeerReadinessTracker {
  private readonly peers = new Map<string, Tracked>();
  private readonly limits: ProbeLimits;
  private inFlight = 0;

  constructor(
    private readonly target: ProbeTarget,
    /** Whether this node's peer paths are carried by a cloud (then they are probed). */
    private readonly cloudCarried: () => boolean,
    private readonly log: Logger,
    private readonly changed: () => void,
    limits: Partial<ProbeLimits> = {},
  ) {
    this.limits = {
      pendingLimitMs: PENDING_LIMIT_MS,
      perSecond: PROBES_PER_SECOND,
      inFlight: MAX_IN_FLIGHT,
      ...limits,
    };
  }

  /** After a reconcile pass: the peers as planned now. */
  update(plan: readonly PeerPlan[]): void {
    const now = Date.now();
    const seen = new Set<string>();
    for (const p of plan) {
      const id = p.subnet.toString();
      seen.add(id);
      const probed = this.cloudCarried() && (p.path === 'direct' || p.path === 'cloud');
      const key = [p.publicIP, p.path, p.reason ?? '', p.waiting ? 'w' : '', probed ? 'p' : ''].join('|');
      const cur = this.peers.get(id);
      if (cur?.key === key) {
        cur.plan = p;
        continue;
      }
      const state: PeerState =
        p.path === 'unreachable' ? (p.waiting ? 'pending' : 'refused') : probed ? 'pending' : 'ready';
      this.peers.set(id, {
        plan: p,
        key,
        state,
        reason: p.path === 'unreachable' ? p.reason : undefined,
        since: now,
        probed,
        nextProbe: now,
        retryMs: FIRST_RETRY_MS,
        inFlight: false,
      });
    }
    for (const id of [...this.peers.keys()]) if (!seen.has(id)) this.peers.delete(id);
    this.changed();
  }

  /** Probes what is due, every TICK_MS, until the timers are cleared. */
  start(timers: Timers): void {
    timers.every(TICK_MS, () => this.tick());
  }

  private tick(): void {
    const now = Date.now();
    const due: Tracked[] = [];
    for (const t of this.peers.values()) {
      // A waiting peer that never got going counts as refused, so that readiness stops waiting for it.
      if (t.state === 'pending' && !t.probed && now - t.since > this.limits.pendingLimitMs)
        this.stuck(t, now);
      if (t.probed && t.state !== 'ready' && !t.inFlight && now >= t.nextProbe) due.push(t);
    }
    const source = this.target.source();
    if (!source || due.length === 0) return;
    const budget = Math.min(
      Math.ceil((this.limits.perSecond * TICK_MS) / 1000),
      this.limits.inFlight - this.inFlight,
    );
    due.sort((a, b) => a.nextProbe - b.nextProbe);
    for (const t of due.slice(0, Math.max(0, budget))) this.send(t, source);
  }

  private send(t: Tracked, source: string): void {
    this.inFlight++;
    t.inFlight = true;
    const dst = formatIPv4(t.plan.subnet.ip);
    void this.target
      .probe(source, dst)
      .catch((e: unknown): ProbeAnswer => ({ answered: false, why: String(e) }))
      .then((a) => this.probed(t, a, source, dst))
      .finally(() => {
        this.inFlight--;
        t.inFlight = false;
      });
  }

  private probed(t: Tracked, a: ProbeAnswer, source: string, dst: string): void {
    if (this.peers.get(t.plan.subnet.toString()) !== t) return; // replanned meanwhile
    const now = Date.now();
    if (a.answered) {
      this.log.info(
        { peer: t.plan.subnet.toString(), path: t.plan.path, afterMs: now - t.since },
        `peer reachable through the cloud (${dst} answered ${source})`,
      );
      this.set(t, 'ready', undefined, now);
      return;
    }
    const why = `no answer from ${dst} to a probe from ${source} over the ${t.plan.path} path (${a.why ?? 'silence'})`;
    if (t.state === 'pending') {
      if (now - t.since > this.limits.pendingLimitMs) this.stuck(t, now, why);
      else t.reason = `cloud path programmed, waiting for the data path: ${why}`;
    }
    t.nextProbe = now + (t.state === 'refused' ? REFUSED_RETRY_MS : t.retryMs);
    t.retryMs = Math.min(MAX_RETRY_MS, t.retryMs * 2);
  }

  private stuck(t: Tracked, now: number, why = t.reason ?? 'no progress'): void {
    const line = `pending for ${this.limits.pendingLimitMs / 1000} s: ${why}`;
    this.log.error({ peer: t.plan.subnet.toString() }, `peer not reachable: ${line}`);
    this.set(t, 'refused', line, now);
  }

  private set(t: Tracked, state: PeerState, reason: string | undefined, now: number): void {
    t.state = state;
    t.reason = reason;
    t.since = now;
    this.changed();
  }

  /** Every peer with its state, as /status shows them. */
  list(): PeerReadiness[] {
    return [...this.peers.values()].map((t) => {
      const { subnet, ...rest } = t.plan;
      const reason = t.reason ?? rest.reason;
      return {
        ...rest,
        subnet: subnet.toString(),
        ...(reason !== undefined && { reason }),
        state: t.state,
        since: new Date(t.since).toISOString(),
      };
    });
  }

  /** Why the node is not ready because of its peers (empty: no peer is pending). */
  reasons(): string[] {
    const pending = [...this.peers.values()].filter((t) => t.state === 'pending');
    const shown = pending.slice(0, 3).map((t) => {
      const p = t.plan;
      return `peer ${p.subnet.toString()} (${p.publicIP}) pending: ${t.reason ?? 'programmed, not probed yet'}`;
    });
    if (pending.length > shown.length) shown.push(`${pending.length - shown.length} more peers pending`);
    return shown;
  }

  /** Forgets every peer (a new lease: everything is planned again). */
  clear(): void {
    this.peers.clear();
  }
}

/** The probe source of a node with this pod subnet: its .0. */
export const probeSourceOf = (subnet: Cidr | undefined): string | undefined =>
  subnet && formatIPv4(subnet.ip);
