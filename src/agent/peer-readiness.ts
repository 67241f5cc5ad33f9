import type { PeerPlan } from '../backend/types.js';
import { formatIPv4, type Cidr } from '../util/ipv4.js';
import type { Logger } from '../util/log.js';
import type { Timers } from '../util/timers.js';

/**
 * Ready means reachable: per peer, whether pods on this node can reach pods on it now.
 *
 *  - `ready`: the path is programmed and, when the cloud carries it, the data path has answered;
 *  - `pending`: being set up — a cloud path whose probe has not answered yet (Neutron's agents take
 *    0.3–1.2 s after an API change, sometimes more), or a peer whose cloud setup is under way;
 *  - `refused`: no path can carry it, with the reason (host-gw and an off-link peer, a cloud quota, …),
 *    or a pending peer that stayed pending for PENDING_LIMIT_MS (named as such).
 *
 * A cloud path is probed with one ICMP echo from this node's pod subnet .0 to the peer's .0: the
 * request and the reply cross this node's port, the router or the shared subnet, and the peer's port,
 * with pod-range sources both ways — what a pod's packets cross. Programming it is not enough: a
 * route on the router or an address pair reaches Neutron's data plane only when its agents next poll.
 * A ready peer is probed again every `verifySeconds`; three misses in a row make it pending again.
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
const PROBE_EVERY_MS = 250;
const STUCK_PROBE_EVERY_MS = 2000;
const MAX_IN_FLIGHT = 16;

interface Tracked {
  plan: PeerPlan;
  /** The plan's identity: a change of path, next hop or reason restarts the peer's readiness. */
  key: string;
  state: PeerState;
  reason: string | undefined;
  since: number;
  probed: boolean;
  nextProbe: number;
  misses: number;
  inFlight: boolean;
}

export interface ProbeTarget {
  /** This node's probe source (its pod subnet's .0), when it has a lease. */
  source(): string | undefined;
  ping(source: string, target: string): Promise<boolean>;
}

export class PeerReadinessTracker {
  private readonly peers = new Map<string, Tracked>();

  constructor(
    private readonly target: ProbeTarget,
    /** Whether this node's peer paths are carried by a cloud (then they are probed). */
    private readonly cloudCarried: () => boolean,
    private readonly verifySeconds: number,
    private readonly log: Logger,
    private readonly changed: () => void,
    private readonly pendingLimitMs = PENDING_LIMIT_MS,
  ) {}

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
        misses: 0,
        inFlight: false,
      });
    }
    for (const id of [...this.peers.keys()]) if (!seen.has(id)) this.peers.delete(id);
    this.changed();
  }

  /** Probes what is due, every PROBE_EVERY_MS, until the timers are cleared. */
  start(timers: Timers): void {
    timers.every(PROBE_EVERY_MS, () => this.tick());
  }

  private tick(): void {
    const now = Date.now();
    let inFlight = [...this.peers.values()].filter((t) => t.inFlight).length;
    for (const t of this.peers.values()) {
      // A waiting peer that never got going counts as refused, so that readiness stops waiting for it.
      if (t.state === 'pending' && !t.probed && now - t.since > this.pendingLimitMs) this.stuck(t, now);
      if (!t.probed || t.inFlight || now < t.nextProbe || inFlight >= MAX_IN_FLIGHT) continue;
      const source = this.target.source();
      if (!source) continue;
      inFlight++;
      t.inFlight = true;
      const dst = formatIPv4(t.plan.subnet.ip);
      void this.target
        .ping(source, dst)
        .then((ok) => this.probed(t, ok, source, dst))
        .finally(() => (t.inFlight = false));
    }
  }

  private probed(t: Tracked, ok: boolean, source: string, dst: string): void {
    if (this.peers.get(t.plan.subnet.toString()) !== t) return; // replanned meanwhile
    const now = Date.now();
    if (ok) {
      t.misses = 0;
      t.nextProbe = now + this.verifySeconds * 1000;
      if (t.state !== 'ready') {
        this.log.info(
          { peer: t.plan.subnet.toString(), path: t.plan.path, afterMs: now - t.since },
          `peer reachable through the cloud (${dst} answered ${source})`,
        );
        this.set(t, 'ready', undefined, now);
      }
      return;
    }
    t.misses++;
    const why = `no answer from ${dst} to a ping from ${source} over the ${t.plan.path} path`;
    if (t.state === 'ready') {
      if (t.misses < 3) {
        t.nextProbe = now + PROBE_EVERY_MS;
        return;
      }
      this.log.warn({ peer: t.plan.subnet.toString() }, `peer stopped answering: ${why}`);
      this.set(t, 'pending', `stopped answering: ${why}`, now);
    } else if (t.state === 'pending') {
      if (now - t.since > this.pendingLimitMs) this.stuck(t, now, why);
      else t.reason = `cloud path programmed, waiting for the data path: ${why} yet`;
    }
    t.nextProbe = now + (t.state === 'refused' ? STUCK_PROBE_EVERY_MS : PROBE_EVERY_MS);
  }

  private stuck(t: Tracked, now: number, why = t.reason ?? 'no progress'): void {
    const line = `pending for ${this.pendingLimitMs / 1000} s: ${why}`;
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
