import { subnetsPrefix, type Lease } from '../store/lease.js';
import type { CorruptEntry, Listing, WatchEvent } from '../store/registry.js';
import type { Cidr } from '../util/ipv4.js';

/**
 * The other nodes' leases as this node last heard them from the store, and the keys it had to skip
 * because their values cannot be parsed. Pure: it takes listings and watch events and says what they
 * meant (a peer gone, this node's own lease deleted or taken, a newly corrupt key); the caller does
 * the logging, the re-acquiring and the reconciling.
 */

/** What the table needs to know about this node to tell its own lease from the peers'. */
export interface OwnIdentity {
  /** The subnet this node holds, if any. */
  subnet: Cidr | undefined;
  publicIP: string;
}

/** What happened to this node's own lease in a batch of events, in order. */
export type OwnLeaseChange =
  | { kind: 'deleted' }
  | { kind: 'taken'; by: string }
  /** Our key was rewritten with our public IP (e.g. our own renewal): adopt its revision. */
  | { kind: 'updated'; lease: Lease };

export interface PeerChanges {
  own: OwnLeaseChange[];
  /** Peers whose lease was deleted (their cloud objects may be reaped). */
  departed: Lease[];
  /** Keys that turned corrupt, or corrupt for a new reason: worth one warning each. */
  newlyCorrupt: CorruptEntry[];
}

export class PeerTable {
  private readonly peers = new Map<string, Lease>();
  private readonly corrupt = new Map<string, string>();

  constructor(private readonly prefix: string) {}

  /** Replaces everything with a full listing. Returns whether this node's own lease was in it. */
  replace(
    listing: Pick<Listing, 'leases' | 'corrupt'>,
    me: OwnIdentity,
  ): { ownSeen: boolean; newlyCorrupt: CorruptEntry[] } {
    this.peers.clear();
    this.corrupt.clear();
    const newlyCorrupt = listing.corrupt.filter((c) => this.noteCorrupt(c));
    let ownSeen = false;
    for (const l of listing.leases) {
      if (isOwn(me, l.subnet)) ownSeen = true;
      else this.peers.set(l.subnet.toKey(), l);
    }
    return { ownSeen, newlyCorrupt };
  }

  /** Applies a batch of watch events. */
  apply(events: readonly WatchEvent[], me: OwnIdentity): PeerChanges {
    const changes: PeerChanges = { own: [], departed: [], newlyCorrupt: [] };
    for (const e of events) {
      if (e.type === 'corrupt') {
        if (this.noteCorrupt(e.entry)) changes.newlyCorrupt.push(e.entry);
        this.peers.delete(e.entry.key.split('/').pop() ?? '');
      } else if (e.type === 'delete') {
        this.corrupt.delete(e.key);
        if (isOwn(me, e.subnet)) changes.own.push({ kind: 'deleted' });
        else {
          const gone = this.peers.get(e.subnet.toKey());
          this.peers.delete(e.subnet.toKey());
          if (gone) changes.departed.push(gone);
        }
      } else {
        this.corrupt.delete(`${subnetsPrefix(this.prefix)}${e.lease.subnet.toKey()}`);
        if (!isOwn(me, e.lease.subnet)) this.peers.set(e.lease.subnet.toKey(), e.lease);
        else if (e.lease.attrs.PublicIP !== me.publicIP)
          changes.own.push({ kind: 'taken', by: e.lease.attrs.PublicIP });
        else changes.own.push({ kind: 'updated', lease: { ...e.lease } });
      }
    }
    return changes;
  }

  /** This node now holds `subnet`: a peer entry for it is stale. */
  forget(subnet: Cidr): void {
    this.peers.delete(subnet.toKey());
  }

  leases(): Lease[] {
    return [...this.peers.values()];
  }

  get size(): number {
    return this.peers.size;
  }

  /** Whether some peer publishes this public IP (a departed node that came back). */
  hasPublicIP(ip: string): boolean {
    return [...this.peers.values()].some((p) => p.attrs.PublicIP === ip);
  }

  corruptEntries(): CorruptEntry[] {
    return [...this.corrupt].map(([key, reason]) => ({ key, reason }));
  }

  get corruptCount(): number {
    return this.corrupt.size;
  }

  /** Records a corrupt key; true when it is new or its reason changed. */
  private noteCorrupt(c: CorruptEntry): boolean {
    const fresh = this.corrupt.get(c.key) !== c.reason;
    this.corrupt.set(c.key, c.reason);
    return fresh;
  }
}

function isOwn(me: OwnIdentity, subnet: Cidr): boolean {
  return me.subnet !== undefined && me.subnet.equals(subnet);
}
