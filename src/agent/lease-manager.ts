import type { NetworkConfig } from '../config/network-config.js';
import { isReservation, sameAttrs, type Lease, type LeaseAttrs } from '../store/lease.js';
import type { SubnetRegistry } from '../store/registry.js';
import { Cidr, formatIPv4 } from '../util/ipv4.js';
import type { Logger } from '../util/log.js';
import { WeftError } from '../util/errors.js';

/**
 * Subnet leasing policy on top of the registry (reference/flannel.md §1.2, with its gaps fixed):
 *   1. a reservation (a key without TTL) for this node's public IP is used as is — and reservations
 *      are never handed to anyone else;
 *   2. an existing lease with this public IP that still fits the config is kept (restart: same subnet,
 *      no write at all when nothing changed);
 *   3. the previous subnet from subnet.env, if it is free;
 *   4. otherwise a random free subnet among the first 100 candidates, claimed with compare-and-swap.
 * Every write is a compare-and-swap, so two nodes can never hold one subnet.
 */
export interface LeaseTiming {
  ttlSeconds: number;
  /** Renew this long before expiry (clamped to half the TTL for short TTLs). */
  renewMarginSeconds: number;
}

const RACE_RETRIES = 10;
const MAX_CANDIDATES = 100;

export class LeaseManager {
  constructor(
    private readonly registry: SubnetRegistry,
    private readonly config: NetworkConfig,
    private readonly timing: LeaseTiming,
    private readonly log: Logger,
  ) {}

  fits(subnet: Cidr): boolean {
    const c = this.config;
    return (
      subnet.len === c.subnetLen &&
      c.network.containsCidr(subnet) &&
      subnet.ip >= c.subnetMin &&
      subnet.ip <= c.subnetMax
    );
  }

  /** Seconds between renewals. */
  renewEverySeconds(): number {
    const margin = Math.min(this.timing.renewMarginSeconds, this.timing.ttlSeconds / 2);
    return Math.max(1, this.timing.ttlSeconds - margin);
  }

  /**
   * Seconds until the first renewal of a lease that has `ttlLeft` seconds to live: the same margin
   * before its expiry as every later renewal keeps, never later than a full period. A lease reused on
   * a restart (or kept from Flannel) may be late in its TTL; unknown or expired: at once.
   */
  firstRenewalInSeconds(ttlLeft: number | undefined): number {
    const every = this.renewEverySeconds();
    if (ttlLeft === undefined || ttlLeft <= 0) return 0;
    return Math.min(every, Math.max(0, ttlLeft - (this.timing.ttlSeconds - every)));
  }

  /** The VTEP MAC this node published before (for a restart that must keep peers' entries valid). */
  async previousAttrs(publicIP: string): Promise<LeaseAttrs | undefined> {
    const { leases } = await this.registry.list();
    return leases.find((l) => l.attrs.PublicIP === publicIP)?.attrs;
  }

  async acquire(attrs: LeaseAttrs, previous?: Cidr): Promise<Lease> {
    for (let attempt = 0; attempt < RACE_RETRIES; attempt++) {
      const got = await this.tryAcquire(attrs, previous);
      if (got) return got;
      this.log.debug({ attempt }, 'lost a subnet race, retrying');
    }
    throw new WeftError(`could not claim a subnet after ${RACE_RETRIES} compare-and-swap races`, {
      hint: 'too many nodes are joining at once; it will be retried',
    });
  }

  private async tryAcquire(attrs: LeaseAttrs, previous?: Cidr): Promise<Lease | undefined> {
    const { leases, corrupt } = await this.registry.list();
    const mine = leases.filter((l) => l.attrs.PublicIP === attrs.PublicIP);

    const reservation = mine.find((l) => isReservation(l) && this.fits(l.subnet));
    if (reservation) {
      if (sameAttrs(reservation.attrs, attrs)) return reservation;
      this.log.info({ subnet: reservation.subnet.toString() }, 'using the reservation for this node');
      return this.registry.casPut(reservation.subnet, attrs, '0', reservation.modRevision);
    }

    for (const l of mine.filter((x) => !isReservation(x))) {
      if (!this.fits(l.subnet)) {
        this.log.warn(
          { subnet: l.subnet.toString() },
          'own earlier lease does not fit the network config any more: releasing it',
        );
        await this.registry.casDelete(l);
        continue;
      }
      const left = await this.registry.ttlLeft(l.leaseId).catch(() => -1);
      if (left > 0 && sameAttrs(l.attrs, attrs)) {
        this.log.info({ subnet: l.subnet.toString(), ttlLeft: left }, "reusing this node's existing lease");
        return l;
      }
      const id = left > 0 ? l.leaseId : await this.registry.grant(this.timing.ttlSeconds);
      const got = await this.registry.casPut(l.subnet, attrs, id, l.modRevision);
      if (got) this.log.info({ subnet: l.subnet.toString() }, "renewed this node's earlier lease");
      return got;
    }

    // Every existing key occupies its subnet, including reservations and entries we cannot parse.
    const taken = leases.map((l) => l.subnet);
    for (const c of corrupt) {
      const s = Cidr.fromKey(c.key);
      if (s) taken.push(s);
    }
    const free = (s: Cidr) => !taken.some((t) => t.overlaps(s));

    let candidate: Cidr | undefined;
    if (previous && this.fits(previous) && free(previous)) candidate = previous;
    if (!candidate) {
      const size = 2 ** (32 - this.config.subnetLen);
      const cands: Cidr[] = [];
      for (
        let ip = this.config.subnetMin;
        ip <= this.config.subnetMax && cands.length < MAX_CANDIDATES;
        ip += size
      ) {
        const s = new Cidr(ip, this.config.subnetLen);
        if (free(s)) cands.push(s);
      }
      if (cands.length === 0) {
        throw new WeftError(
          `no free subnet left in ${this.config.network.toString()} between ${formatIPv4(this.config.subnetMin)} and ${formatIPv4(this.config.subnetMax)} (${taken.length} in use)`,
          { hint: 'enlarge Network, shorten SubnetLen, or remove stale leases' },
        );
      }
      candidate = cands[Math.floor(Math.random() * cands.length)]!;
    }
    const id = await this.registry.grant(this.timing.ttlSeconds);
    const got = await this.registry.casPut(candidate, attrs, id, undefined);
    if (!got) {
      await this.registry.revoke(id);
      return undefined;
    }
    this.log.info(
      { subnet: candidate.toString(), ttl: this.timing.ttlSeconds },
      'acquired a new subnet lease',
    );
    return got;
  }

  /**
   * Extends the lease: a fresh etcd lease bound to the key by compare-and-swap, then the old one revoked
   * (Flannel's renewal). Reservations never expire and are left alone. Returns undefined when the key
   * changed or vanished underneath (the caller re-acquires).
   */
  async renew(lease: Lease): Promise<Lease | undefined> {
    if (isReservation(lease)) return lease;
    const id = await this.registry.grant(this.timing.ttlSeconds);
    const got = await this.registry.casPut(lease.subnet, lease.attrs, id, lease.modRevision);
    if (!got) {
      await this.registry.revoke(id);
      return undefined;
    }
    await this.registry.revoke(lease.leaseId);
    return got;
  }
}
