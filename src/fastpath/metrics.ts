import { Counter, Gauge, type Registry } from 'prom-client';

/**
 * The fast path's counters on the agent's /metrics: what the BPF program did with each packet it
 * saw (per-CPU counters in its weft_stats map, summed by the loader), as
 * weft_fastpath_packets_total{path="fast"|"slow", reason} and the same in bytes.
 */
export type KernelCounters = Record<string, [number, number]>;

/** The loader's counter names → labels. */
const LABELS: Record<string, { path: 'fast' | 'slow'; reason: string }> = {
  fast_local: { path: 'fast', reason: 'local_pod' },
  fast_vxlan: { path: 'fast', reason: 'vxlan_peer' },
  fast_routed: { path: 'fast', reason: 'routed_peer' },
  fast_in: { path: 'fast', reason: 'from_peer' },
  slow_not_ipv4: { path: 'slow', reason: 'not_ipv4' },
  slow_unknown_destination: { path: 'slow', reason: 'unknown_destination' },
  slow_nat: { path: 'slow', reason: 'nat' },
  slow_protocol: { path: 'slow', reason: 'protocol' },
  slow_ttl: { path: 'slow', reason: 'ttl' },
  slow_mtu: { path: 'slow', reason: 'mtu' },
  slow_other: { path: 'slow', reason: 'other' },
  not_pod: { path: 'slow', reason: 'not_for_a_pod' },
};

export class FastPathMetrics {
  readonly active: Gauge;
  private readonly packets: Counter;
  private readonly bytes: Counter;
  /** The kernel's last figures: counters only grow here, even when the kernel's restart from 0. */
  private last = new Map<string, [number, number]>();

  constructor(registry: Registry) {
    this.active = new Gauge({
      name: 'weft_fastpath_active',
      help: '1 while the BPF fast path is attached in this node, 0 when pod traffic takes the normal path only',
      registers: [registry],
    });
    this.packets = new Counter({
      name: 'weft_fastpath_packets_total',
      help: 'Packets seen by the BPF fast path: sent straight to their next device (fast) or left to the normal stack (slow), by reason',
      labelNames: ['path', 'reason'],
      registers: [registry],
    });
    this.bytes = new Counter({
      name: 'weft_fastpath_bytes_total',
      help: 'Bytes of the packets in weft_fastpath_packets_total',
      labelNames: ['path', 'reason'],
      registers: [registry],
    });
  }

  update(counters: KernelCounters): void {
    for (const [name, [p, b]] of Object.entries(counters)) {
      const labels = LABELS[name];
      if (!labels) continue;
      const [lp, lb] = this.last.get(name) ?? [0, 0];
      // A smaller figure: the kernel's counters started again (a new object): count from 0.
      this.packets.inc(labels, p >= lp ? p - lp : p);
      this.bytes.inc(labels, b >= lb ? b - lb : b);
      this.last.set(name, [p, b]);
    }
  }
}
