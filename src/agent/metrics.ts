import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** The agent's Prometheus metrics (Flannel has none). One registry per agent. */
export class AgentMetrics {
  readonly registry = new Registry();
  readonly peers = new Gauge({
    name: 'weft_peers',
    help: 'Peer nodes by data path (vxlan, udp, direct, cloud, unreachable)',
    labelNames: ['path'],
    registers: [this.registry],
  });
  readonly leaseTtl = new Gauge({
    name: 'weft_lease_ttl_seconds',
    help: "Seconds left on this node's subnet lease (-1: reservation)",
    registers: [this.registry],
  });
  readonly reconcileDuration = new Histogram({
    name: 'weft_reconcile_duration_seconds',
    help: 'Time to bring the kernel to the desired state',
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 5],
    registers: [this.registry],
  });
  readonly reconcileErrors = new Counter({
    name: 'weft_reconcile_errors_total',
    help: 'Kernel or cloud operations that failed during reconcile',
    registers: [this.registry],
  });
  readonly etcdUp = new Gauge({
    name: 'weft_etcd_up',
    help: '1 when etcd answers, 0 when it does not',
    registers: [this.registry],
  });
  readonly ready = new Gauge({
    name: 'weft_ready',
    help: '1 when the node has a lease, a programmed data path and etcd connectivity',
    registers: [this.registry],
  });
  readonly leaseReacquired = new Counter({
    name: 'weft_lease_reacquired_total',
    help: "Times this node's lease was lost (deleted or expired) and taken again",
    registers: [this.registry],
  });
  readonly corruptLeases = new Gauge({
    name: 'weft_corrupt_leases',
    help: 'Lease keys skipped because their value cannot be parsed',
    registers: [this.registry],
  });
  readonly foreignOverlayDropped = new Gauge({
    name: 'weft_overlay_foreign_dropped_packets',
    help: 'Datagrams to the VXLAN port from addresses that are not current peers, dropped',
    registers: [this.registry],
  });
  readonly cloudReady = new Gauge({
    name: 'weft_cloud_ready',
    help: "Cloud routing of this node's pods: pairs = its port accepts pod traffic, route = the router routes its pod subnet",
    labelNames: ['what'],
    registers: [this.registry],
  });
  readonly cloudProblem = new Gauge({
    name: 'weft_cloud_problem',
    help: '1 while the cloud refuses something for this node (AllowedAddressPairExhausted, RoutesExhausted, ExtensionMissing, …)',
    labelNames: ['code'],
    registers: [this.registry],
  });
  readonly watchResyncs = new Counter({
    name: 'weft_watch_resyncs_total',
    help: 'Full re-lists of the leases (watch lost, compaction, reconnect)',
    labelNames: ['reason'],
    registers: [this.registry],
  });
}
