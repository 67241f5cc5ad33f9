import type { CorruptEntry, WatchEvent } from '../store/registry.js';
import { describeError } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import type { EtcdLink } from './etcd-link.js';
import type { AgentMetrics } from './metrics.js';
import { PeerTable, type OwnIdentity, type PeerChanges } from './peer-table.js';

export interface PeerSyncHooks {
  /** Who this node is now (its subnet changes when its lease is re-acquired elsewhere). */
  me(): OwnIdentity;
  /** A batch of watch events changed the table. */
  changed(c: PeerChanges): void;
  /** A full listing did not contain this node's lease. */
  ownMissing(): void;
  /** The table was replaced by a full listing. */
  resynced(): void;
}

/**
 * Keeps the peer table in step with the store: a full listing, then a watch from the revision after
 * it; when the watch is lost (compaction) or etcd comes back after an outage, the same again.
 */
export class PeerSync {
  readonly table: PeerTable;
  private stopWatch: (() => Promise<void>) | undefined;
  private revision = '0';

  constructor(
    private readonly etcd: EtcdLink,
    private readonly metrics: AgentMetrics,
    private readonly log: Logger,
    private readonly hooks: PeerSyncHooks,
    private readonly signal: AbortSignal,
  ) {
    this.table = new PeerTable(etcd.registry.prefix);
  }

  /** Re-lists every lease, replaces the peer table with it, and (re)starts the watch after it. */
  async resync(reason: string): Promise<void> {
    const listing = await this.etcd.retry('list the subnet leases', () => this.etcd.registry.list());
    this.metrics.watchResyncs.inc({ reason });
    const me = this.hooks.me();
    const { ownSeen, newlyCorrupt } = this.table.replace(listing, me);
    this.warnCorrupt(newlyCorrupt);
    if (!ownSeen && me.subnet) this.hooks.ownMissing();
    await this.stopWatch?.().catch(() => undefined);
    this.revision = String(BigInt(listing.revision) + 1n);
    this.stopWatch = await this.etcd.retry('watch the subnet leases', () =>
      this.etcd.registry.watch(this.revision, {
        onEvents: (evs, rev) => this.onEvents(evs, rev),
        onLost: (why) => {
          this.log.warn({ reason: why }, 'lease watch cancelled (e.g. compacted revision): re-listing');
          void this.resync('watch-lost').catch((e: unknown) => this.failed(e));
        },
        onDisconnected: (why) => this.log.debug({ reason: why }, 'lease watch disconnected; reconnecting'),
      }),
    );
    this.hooks.resynced();
  }

  private onEvents(events: WatchEvent[], revision: string): void {
    this.revision = revision;
    const changes = this.table.apply(events, this.hooks.me());
    this.warnCorrupt(changes.newlyCorrupt);
    this.hooks.changed(changes);
  }

  private warnCorrupt(entries: CorruptEntry[]): void {
    for (const { key, reason } of entries) this.log.warn({ key, reason }, `skipping lease ${key}: ${reason}`);
    this.metrics.corruptLeases.set(this.table.corruptCount);
  }

  /** A re-list that failed outside start-up: one line, unless the agent is stopping anyway. */
  failed(e: unknown): void {
    if (!this.signal.aborted) this.log.warn(`catch-up failed: ${describeError(e)}`);
  }

  async stop(): Promise<void> {
    await this.stopWatch?.().catch(() => undefined);
  }
}
