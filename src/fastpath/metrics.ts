import { Counter, Gauge, type Registry } from 'prom-client';

/**
 * The fast path's counters on the agent's /metrics: what the BPF program did with each packet it
 * saw (per-CPU counters in its weft_stats map, summed by the loader over this namespace's objects),
 * as weft_fastpath_packets_total{path="fast"|"slow", reason} and the same in bytes. Read from the
 * kernel at scrape time (one loader run per scrape, none between scrapes); the kernel's figures
 * start again from zero when the fast path is removed and attached again, a counter reset to
 * Prometheus.
 */
export type KernelCounters = Record<string, [number, number]>;

/** The loader's counter names → labels. */
const LABELS: Record<string, { path: 'fast' | 'slow'; reason: string }> = {
  fast_local: { path: 'fast', reason: 'local_pod' },
  fast_vxlan: { path: 'fast', reason: 'vxlan_peer' },
  fast_routed: { path: 'fast', reason: 'routed_peer' },
  fast_in: { path: 'fast', reason: 'from_peer' },
  fast_decap: { path: 'fast', reason: 'from_vxlan_peer' },
  slow_not_ipv4: { path: 'slow', reason: 'not_ipv4' },
  slow_unknown_destination: { path: 'slow', reason: 'unknown_destination' },
  slow_nat: { path: 'slow', reason: 'nat' },
  slow_protocol: { path: 'slow', reason: 'protocol' },
  slow_ttl: { path: 'slow', reason: 'ttl' },
  slow_mtu: { path: 'slow', reason: 'mtu' },
  slow_other: { path: 'slow', reason: 'other' },
  not_pod: { path: 'slow', reason: 'not_for_a_pod' },
  slow_vxlan_gso: { path: 'slow', reason: 'vxlan_gso_or_ce' },
};

export function registerFastPathMetrics(
  registry: Registry,
  counters: () => Promise<KernelCounters | undefined>,
): Gauge {
  // Both families ask within one scrape: one loader run serves them.
  let pending: Promise<KernelCounters | undefined> | undefined;
  const read = () => {
    pending ??= counters().finally(() => setTimeout(() => (pending = undefined), 500).unref());
    return pending;
  };
  const family = (name: string, help: string, index: 0 | 1) =>
    new Counter({
      name,
      help,
      labelNames: ['path', 'reason'],
      registers: [registry],
      async collect() {
        const c = await read();
        this.reset();
        for (const [k, v] of Object.entries(c ?? {})) {
          const labels = LABELS[k];
          if (labels) this.inc(labels, v[index]);
        }
      },
    });
  family(
    'weft_fastpath_packets_total',
    'Packets seen by the BPF fast path: sent straight to their next device (fast) or left to the normal stack (slow), by reason',
    0,
  );
  family('weft_fastpath_bytes_total', 'Bytes of the packets in weft_fastpath_packets_total', 1);
  return new Gauge({
    name: 'weft_fastpath_active',
    help: '1 while the BPF fast path is attached in this node, 0 when pod traffic takes the normal path only',
    registers: [registry],
  });
}
