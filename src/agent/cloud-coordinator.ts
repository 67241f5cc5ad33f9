import type { Etcd3 } from 'etcd3';
import type { Backend, CloudFlags } from '../backend/types.js';
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

/**
 * Finds this node in the cloud. Configuration problems (no clouds.yaml, not a cloud port) are fatal
 * for `neutron` and make `auto` go on without the cloud; an unreachable cloud API is retried.
 */
export async function findInCloud(o: CloudStart): Promise<CloudRouting | undefined> {
  const isConfigProblem = (err: unknown) =>
    err instanceof CloudConfigError || (err instanceof CloudProviderError && err.code === 'NodePortNotFound');
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
