import type { Etcd3 } from 'etcd3';
import type { Backend, CloudFlags } from '../backend/types.js';
import { recordedOwners } from '../cloud/neutron.js';
import { EtcdOwnershipStore } from '../cloud/ownership.js';
import { CloudProviderError } from '../cloud/provider.js';
import { CloudConfigError, OpenStackUnreachableError } from '../openstack/errors.js';
import { vtepOf } from '../store/lease.js';
import { retry } from '../util/backoff.js';
import { describeError } from '../util/errors.js';
import type { Cidr } from '../util/ipv4.js';
import type { Logger } from '../util/log.js';
import type { Timers } from '../util/timers.js';
import { CloudRouting, type CloudOptions } from './cloud.js';
import type { AgentMetrics } from './metrics.js';
import type { OwnLease } from './own-lease.js';

/**
 * The agent's cloud coordinator: finds this node in the cloud at start, keeps the cloud carrying its
 * pod subnet (a periodic re-check that repairs drift and republishes the readiness flags in the lease
 * when they change), and reaps the cloud objects of peers that left for good.
 */

const REAP_GRACE_MS = 15_000;

/** Whether the operator pointed the agent at a cloud (auto uses one only then). */
export function cloudConfigured(c: CloudOptions | undefined): boolean {
  return Boolean(c?.cloud || c?.configFile || process.env.OS_CLOUD || process.env.OS_AUTH_URL);
}

/** Whether this backend routes through the cloud with these options. */
export function wantsCloud(backend: Backend, c: CloudOptions | undefined): boolean {
  return backend.cloud === 'required' || (backend.cloud === 'optional' && cloudConfigured(c));
}

export interface CloudStart {
  options: CloudOptions | undefined;
  etcd: Etcd3;
  prefix: string;
  nodeIp: string;
  /** The MAC of the node's port (the VTEP MAC or the interface's). */
  mac: string | undefined;
  required: boolean;
  metrics: AgentMetrics;
  log: Logger;
  signal: AbortSignal;
}

const isConfigProblem = (err: unknown) =>
  err instanceof CloudConfigError || (err instanceof CloudProviderError && err.code === 'NodePortNotFound');

/**
 * Finds this node in the cloud. Configuration problems (no clouds.yaml, not a cloud port) are fatal
 * for `neutron` and make `auto` go on without the cloud; an unreachable cloud API is retried.
 */
export async function findInCloud(o: CloudStart): Promise<CloudRouting | undefined> {
  try {
    const node = { etcd: o.etcd, prefix: o.prefix, publicIp: o.nodeIp, mac: o.mac };
    return await retry(() => CloudRouting.connect(o.options ?? { cluster: 'weft' }, o.log, o.metrics, node), {
      initialMs: 1000,
      maxMs: 10_000,
      signal: o.signal,
      fatal: isConfigProblem,
      onRetry: (err, delay) => {
        const why = err instanceof OpenStackUnreachableError ? err.message : describeError(err);
        o.log.warn(`cannot reach the cloud: ${why}; retrying in ${delay / 1000}s`);
      },
    });
  } catch (err) {
    if (isConfigProblem(err) && o.required) throw err;
    o.log.warn(`no cloud routing (VXLAN is used where routing would need the cloud): ${describeError(err)}`);
    return undefined;
  }
}

export class CloudCoordinator {
  private readonly reaps = new Map<string, NodeJS.Timeout>();

  constructor(
    readonly routing: CloudRouting,
    private readonly lease: OwnLease,
    private readonly backend: Backend,
    private readonly hooks: {
      /** Whether a peer with this public IP is in the peer table (it came back). */
      peerIsBack(ip: string): boolean;
      reconcile(): void;
    },
    private readonly log: Logger,
    private readonly signal: AbortSignal,
  ) {}

  private get nodeIp(): string {
    return this.lease.attrs.PublicIP;
  }

  /** Makes the cloud carry the subnet and publishes in the lease whether it does. */
  async carry(subnet: Cidr): Promise<void> {
    await this.publish(await this.routing.ensureOwn(subnet, this.nodeIp));
  }

  /** Re-asserts this node's cloud pairs and routes every `seconds`; republishes the lease when readiness changed. */
  startResync(timers: Timers, seconds: number): void {
    timers.every(seconds * 1000, () => void this.resync());
  }

  private async resync(): Promise<void> {
    const own = this.lease.current;
    if (!own || this.signal.aborted) return;
    try {
      await this.carry(own.subnet);
      this.hooks.reconcile();
    } catch (err) {
      this.log.warn(`cloud re-check failed: ${describeError(err)}`);
    }
  }

  private async publish(flags: CloudFlags): Promise<void> {
    const attrs = this.lease.attrs;
    const next = { ...attrs, ...this.backend.leaseAttrs(vtepOf(attrs)?.mac, flags) };
    if (JSON.stringify(next) === JSON.stringify(attrs)) return;
    await this.lease.republish('publish the cloud readiness in the lease', next);
    this.log.info({ cloud: flags }, 'published cloud readiness');
  }

  /**
   * Reaps a departed peer's cloud objects after a grace period, unless it came back meanwhile (a lease
   * deleted by an operator is re-acquired within seconds and must not lose its routes).
   */
  scheduleReap(ip: string): void {
    clearTimeout(this.reaps.get(ip));
    this.reaps.set(
      ip,
      setTimeout(() => {
        this.reaps.delete(ip);
        if (!this.hooks.peerIsBack(ip) && !this.signal.aborted) void this.routing.reap(ip);
      }, REAP_GRACE_MS),
    );
  }

  /** This node leaves the cluster: every pair and route it owns removed. */
  async releaseAll(): Promise<void> {
    await this.routing
      .releaseAll()
      .catch((e: unknown) => this.log.error(`cannot release cloud objects: ${describeError(e)}`));
  }

  stop(): void {
    for (const t of this.reaps.values()) clearTimeout(t);
    this.reaps.clear();
  }
}

/**
 * What an earlier cloud-routed backend (neutron, or auto on a cloud) made for this node and left in
 * the cloud: the agent owns it, so when it starts with a backend that does not use the cloud, it
 * removes it — from the ownership records in etcd, never anything else. Left behind, the pairs and
 * routes would keep carrying pod traffic the new backend did not ask for (host-gw would seem to work
 * on Neutron, with port security on). Runs in the background: the node serves pods meanwhile, and
 * /status says how far it got (`weft lab backend` waits for it); the agent's stop signal ends its waits.
 */
export type EarlierCloudState = 'checking' | 'none' | 'releasing' | 'released' | 'unconfigured' | 'failed';

export interface EarlierCloudStatus {
  state: EarlierCloudState;
  /** What the records named for this node. */
  pairs: number;
  routes: number;
  reason?: string;
}

export class EarlierCloudRelease {
  private st: EarlierCloudStatus = { state: 'checking', pairs: 0, routes: 0 };
  private running: Promise<void> | undefined;

  constructor(private readonly o: Omit<CloudStart, 'required'>) {}

  start(): void {
    this.running ??= this.run().catch((e: unknown) => {
      if (this.o.signal.aborted) return;
      this.st = { ...this.st, state: 'failed', reason: describeError(e) };
      this.o.log.error(`cannot release the cloud objects an earlier backend made: ${describeError(e)}`);
    });
  }

  /** Waits until the release is over (leaving the cluster: nothing may stay behind). */
  async finish(): Promise<void> {
    await this.running;
  }

  status(): EarlierCloudStatus {
    return { ...this.st };
  }

  private async run(): Promise<void> {
    const o = this.o;
    const cluster = o.options?.cluster ?? 'weft';
    const owners = await retry(() => recordedOwners(new EtcdOwnershipStore(o.etcd, o.prefix), cluster), {
      initialMs: 500,
      maxMs: 5000,
      signal: o.signal,
      onRetry: (err, delay) =>
        o.log.warn(
          `cannot read the cloud ownership records: ${describeError(err)}; retrying in ${delay / 1000}s`,
        ),
    });
    const mine = owners.get(o.nodeIp);
    const pairs = mine?.pairs.length ?? 0;
    const routes = mine?.routes.length ?? 0;
    const what = `${pairs} address pair(s) and ${routes} router route(s)`;
    if (pairs + routes === 0) {
      this.st = { state: 'none', pairs, routes };
      return;
    }
    if (!cloudConfigured(o.options)) {
      const reason = `${what} that an earlier cloud-routed backend made for this node are still in the cloud`;
      this.st = { state: 'unconfigured', pairs, routes, reason };
      o.log.warn(
        `${reason}: start the agent with --cloud (it then removes them) or run weft cloud-routes --release`,
      );
      return;
    }
    this.st = { state: 'releasing', pairs, routes };
    o.log.info({ pairs, routes }, 'releasing the cloud objects an earlier backend made for this node');
    await retry(
      async () => {
        const routing = await CloudRouting.connect(o.options ?? { cluster }, o.log, o.metrics, {
          etcd: o.etcd,
          prefix: o.prefix,
          publicIp: o.nodeIp,
          mac: o.mac,
        });
        await routing.releaseAll();
      },
      {
        initialMs: 1000,
        maxMs: 10_000,
        signal: o.signal,
        fatal: isConfigProblem,
        onRetry: (err, delay) =>
          o.log.warn(
            `cannot release the earlier cloud objects: ${describeError(err)}; retrying in ${delay / 1000}s`,
          ),
      },
    );
    this.st = { state: 'released', pairs, routes };
    o.log.info(
      { pairs, routes },
      `released ${what} an earlier backend made for this node (this backend does not route through the cloud)`,
    );
  }
}
