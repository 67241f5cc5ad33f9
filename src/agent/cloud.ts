import type { Etcd3 } from 'etcd3';
import {
  createNeutronProvider,
  CloudProviderError,
  type CloudCapabilities,
  type CloudRouteProvider,
} from '../cloud/index.js';
import type { CloudFlags, CloudView } from '../backend/types.js';
import { describeError } from '../util/errors.js';
import { parseIPv4, type Cidr } from '../util/ipv4.js';
import type { Logger } from '../util/log.js';
import type { AgentMetrics } from './metrics.js';

/**
 * The agent's side of cloud routing (the talk's optimisation, generalised): at start it finds this
 * node's port and router; with a lease, it makes the port accept the node's pod subnet and puts the
 * route pod subnet → node on the router; it says exactly what the cloud refused (quota, port security,
 * missing extension) and publishes in its lease whether its pods are cloud-routable, so that peers only
 * route to it natively when both ends are ready (and `auto` encapsulates otherwise). It never touches a
 * cloud object it does not own; ownership lives in etcd beside the leases.
 */
export interface CloudOptions {
  /** clouds.yaml cloud name (OS_CLOUD). */
  cloud?: string;
  /** clouds.yaml path (OS_CLIENT_CONFIG_FILE). */
  configFile?: string;
  cluster: string;
}

export class CloudRouting {
  private flags: CloudFlags = { Pairs: false, Route: false };
  private problems = new Map<string, string>();
  private ownSubnet: Cidr | undefined;

  private constructor(
    private readonly provider: CloudRouteProvider,
    private readonly caps: CloudCapabilities,
    private readonly log: Logger,
    private readonly metrics: AgentMetrics,
  ) {}

  /** Finds this node's port and router in the cloud (one attempt; the caller retries). */
  static async connect(
    opts: CloudOptions,
    log: Logger,
    metrics: AgentMetrics,
    node: { etcd: Etcd3; prefix: string; publicIp: string; mac: string | undefined },
  ): Promise<CloudRouting> {
    const env = {
      ...process.env,
      ...(opts.configFile && { OS_CLIENT_CONFIG_FILE: opts.configFile }),
    };
    const provider = createNeutronProvider({
      etcd: node.etcd,
      prefix: node.prefix,
      cluster: opts.cluster,
      node: node.publicIp,
      publicIp: node.publicIp,
      ...(node.mac && { mac: node.mac }),
      configOptions: { env, ...(opts.cloud && { cloud: opts.cloud }) },
      log,
    });
    const caps = await provider.init();
    for (const n of caps.notes) log.info({ cloud: caps.provider }, n);
    log.info(
      {
        port: caps.node.portId,
        router: caps.router?.id,
        antiSpoofing: caps.antiSpoofing,
        routes: caps.routes,
        networkMtu: caps.node.mtu,
      },
      `cloud ${caps.provider}: node port and router found`,
    );
    return new CloudRouting(provider, caps, log, metrics);
  }

  capabilities(): CloudCapabilities {
    return this.caps;
  }

  /** What backends need to plan peers through the cloud. */
  view(): CloudView {
    const router = this.caps.router ? parseIPv4(this.caps.router.addressOnNodeSubnet) : undefined;
    return {
      classify: (ip) => this.provider.classifyPeer(ip),
      routerAddress: router,
      own: { ...this.flags },
      problems: [...this.problems.values()],
    };
  }

  currentFlags(): CloudFlags {
    return { ...this.flags };
  }

  /** Makes the cloud carry this node's pod subnet; returns the flags to publish. Never throws for cloud refusals. */
  async ensureOwn(subnet: Cidr, nodeIp: string): Promise<CloudFlags> {
    if (this.ownSubnet && !this.ownSubnet.equals(subnet)) await this.releaseSubnet(this.ownSubnet, nodeIp);
    this.ownSubnet = subnet;
    const cidr = subnet.toString();
    const pairs = await this.attempt('pairs', async () => {
      if (this.caps.antiSpoofing === 'unavailable') {
        throw new CloudProviderError(
          'ExtensionMissing',
          `port security is on but the cloud has no allowed-address-pairs: pod traffic from ${cidr} would be dropped`,
          'use the vxlan backend, or ask the operator to enable allowed-address-pairs',
        );
      }
      await this.provider.ensurePodSubnetAllowed(cidr);
    });
    const route =
      this.caps.router === undefined || this.caps.routes === 'unavailable'
        ? (this.clear('route'), false)
        : await this.attempt('route', () =>
            this.provider.ensureRoutes([{ destination: cidr, nexthop: nodeIp }]).then(() => undefined),
          );
    this.flags = { Pairs: pairs, Route: route };
    this.metrics.cloudReady.set({ what: 'pairs' }, pairs ? 1 : 0);
    this.metrics.cloudReady.set({ what: 'route' }, route ? 1 : 0);
    return this.currentFlags();
  }

  private clear(what: string): void {
    this.problems.delete(what);
  }

  private async attempt(what: string, fn: () => Promise<void>): Promise<boolean> {
    try {
      await fn();
      if (this.problems.has(what)) this.log.info({ what }, `cloud ${what}: fixed`);
      this.problems.delete(what);
      for (const code of [
        'AllowedAddressPairExhausted',
        'RoutesExhausted',
        'ExtensionMissing',
        'AddressPairAndPortSecurityRequired',
      ]) {
        if (what === (code === 'RoutesExhausted' ? 'route' : 'pairs'))
          this.metrics.cloudProblem.set({ code }, 0);
      }
      return true;
    } catch (err) {
      const line = describeError(err);
      if (this.problems.get(what) !== line)
        this.log.error({ what }, `cloud cannot carry this node's pods: ${line}`);
      this.problems.set(what, line);
      const code = err instanceof CloudProviderError ? err.code : 'CloudError';
      this.metrics.cloudProblem.set({ code }, 1);
      return false;
    }
  }

  private async releaseSubnet(subnet: Cidr, nodeIp: string): Promise<void> {
    await this.provider
      .removeRoutes([{ destination: subnet.toString(), nexthop: nodeIp }])
      .catch((e: unknown) => this.log.warn(`cannot remove the old cloud route: ${describeError(e)}`));
    await this.provider
      .removePodSubnetAllowed(subnet.toString())
      .catch((e: unknown) => this.log.warn(`cannot remove the old address pair: ${describeError(e)}`));
  }

  /** A peer's lease is gone for good: remove what it owned in the cloud (idempotent; any node may do it). */
  async reap(peerIp: string): Promise<void> {
    try {
      await this.provider.reapNode(peerIp);
    } catch (e) {
      this.log.warn({ peer: peerIp }, `cannot reap the departed node's cloud routes: ${describeError(e)}`);
    }
  }

  /** This node leaves the cluster: remove every pair and route it owns. */
  async releaseAll(): Promise<void> {
    await this.provider.releaseAll();
    this.flags = { Pairs: false, Route: false };
  }

  status(): unknown {
    return {
      provider: this.caps.provider,
      port: this.caps.node.portId,
      router: this.caps.router?.id,
      antiSpoofing: this.caps.antiSpoofing,
      routes: this.caps.routes,
      published: this.flags,
      problems: [...this.problems.values()],
    };
  }
}
