import { isReservation, type Lease, type LeaseAttrs } from '../store/lease.js';
import { retry } from '../util/backoff.js';
import type { Cidr } from '../util/ipv4.js';
import type { Logger } from '../util/log.js';
import type { Timers } from '../util/timers.js';
import type { EtcdLink } from './etcd-link.js';
import type { LeaseManager } from './lease-manager.js';
import type { AgentMetrics } from './metrics.js';
import type { OwnIdentity } from './peer-table.js';

/**
 * This node's own lease: what it publishes (its attributes), the lease it holds, its renewal, and
 * what happens when it is lost (deleted by an operator, expired during an outage, taken by another
 * node). Every write of the lease goes through `republish`, so that the first acquisition, a new VTEP
 * MAC, new cloud readiness and a re-acquisition are one code path with one retry policy.
 */
export class OwnLease {
  private published: LeaseAttrs;
  private lease: Lease | undefined;
  private reacquiring = false;

  constructor(
    private readonly manager: LeaseManager,
    private readonly etcd: EtcdLink,
    private readonly metrics: AgentMetrics,
    private readonly log: Logger,
    private readonly signal: AbortSignal,
    attrs: LeaseAttrs,
    /** After a re-acquisition: the caller re-configures the node for the (maybe new) lease. */
    private readonly onReacquired: (old: Lease, now: Lease) => Promise<void>,
  ) {
    this.published = attrs;
  }

  get current(): Lease | undefined {
    return this.lease;
  }

  get attrs(): LeaseAttrs {
    return this.published;
  }

  identity(): OwnIdentity {
    return { subnet: this.lease?.subnet, publicIP: this.published.PublicIP };
  }

  /**
   * Publishes `attrs` (or the current attributes again) and holds a lease for `subnet` (default: the
   * one held now) or, when it is taken, another one. Retried until etcd answers.
   */
  async republish(
    what: string,
    attrs?: LeaseAttrs,
    subnet: Cidr | undefined = this.lease?.subnet,
  ): Promise<Lease> {
    if (attrs) this.published = attrs;
    this.lease = await this.etcd.retry(what, () => this.manager.acquire(this.published, subnet));
    return this.lease;
  }

  /** The watch saw our key rewritten with our public IP (e.g. our own renewal): adopt it. */
  observed(lease: Lease): void {
    this.lease = lease;
  }

  /** This node's lease vanished (operator delete, expiry during an outage): take one again and carry on. */
  async lost(how: string): Promise<void> {
    if (this.reacquiring || this.signal.aborted || !this.lease) return;
    this.reacquiring = true;
    try {
      const old = this.lease;
      this.log.warn(
        { subnet: old.subnet.toString() },
        `this node's lease ${old.subnet.toString()} was ${how}: re-acquiring it`,
      );
      this.metrics.leaseReacquired.inc();
      const now = await this.republish('re-acquire the subnet lease', undefined, old.subnet);
      if (!now.subnet.equals(old.subnet)) {
        this.log.warn(
          { old: old.subnet.toString(), new: now.subnet.toString() },
          'the node got a different subnet: pods attached before keep their old addresses until re-attached',
        );
      } else this.log.info({ subnet: now.subnet.toString() }, 're-acquired the same subnet');
      await this.onReacquired(old, now);
    } finally {
      this.reacquiring = false;
    }
  }

  /**
   * Renews the lease every `renewEverySeconds`; a failed renewal is retried every ≤ 5 s until it works.
   * The first renewal comes when the lease held needs it, not a full period after the start: a restart
   * reuses its lease as it is, however little of its TTL is left.
   */
  async startRenewing(timers: Timers): Promise<void> {
    const everyMs = this.manager.renewEverySeconds() * 1000;
    const retryMs = Math.min(everyMs, 5000);
    const loop = async () => {
      await retry(() => this.renewOnce(), {
        initialMs: retryMs,
        maxMs: retryMs,
        signal: this.signal,
        onRetry: (err, delay) =>
          this.log.warn(
            `cannot renew the subnet lease: ${this.etcd.problem(err)}; retrying in ${delay / 1000}s`,
          ),
      }).catch(() => undefined); // only when stopping
      if (!this.signal.aborted) timers.after(everyMs, () => void loop());
    };
    timers.after(await this.firstRenewalMs(everyMs), () => void loop());
  }

  private async firstRenewalMs(everyMs: number): Promise<number> {
    const held = this.lease;
    if (!held || isReservation(held)) return everyMs;
    const left = await this.etcd.registry.ttlLeft(held.leaseId).catch(() => undefined);
    const ms = this.manager.firstRenewalInSeconds(left) * 1000;
    if (ms < everyMs)
      this.log.debug(
        { subnet: held.subnet.toString(), ttlLeft: left, renewInSeconds: ms / 1000 },
        'the lease held was reused as it was: its first renewal keeps the margin before its expiry',
      );
    return ms;
  }

  private async renewOnce(): Promise<void> {
    if (this.lease && !isReservation(this.lease)) {
      const renewed = await this.manager.renew(this.lease);
      if (renewed) {
        this.lease = renewed;
        this.log.debug({ subnet: renewed.subnet.toString() }, 'lease renewed');
      } else await this.lost('changed underneath');
    }
    await this.updateTtlMetric();
  }

  async updateTtlMetric(): Promise<void> {
    if (!this.lease) return;
    if (isReservation(this.lease)) return void this.metrics.leaseTtl.set(-1);
    const left = await this.etcd.registry.ttlLeft(this.lease.leaseId).catch(() => undefined);
    if (left !== undefined) this.metrics.leaseTtl.set(left);
  }

  /** The node leaves: its lease key is deleted (if nobody rewrote it meanwhile). */
  async release(): Promise<void> {
    if (this.lease) await this.etcd.registry.casDelete(this.lease).catch(() => undefined);
  }
}
