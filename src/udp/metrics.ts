import type { Metric, Registry } from 'prom-client';
import type { BatchHistogram, HelperStats } from './helper.js';

/**
 * The udp data path's Prometheus metrics, read from weft-udp's own counters at scrape time. The
 * counters restart from zero with the process, as Prometheus expects of counters;
 * weft_udp_datapath_restarts_total says when that happened.
 */

interface Sample {
  labels: Record<string, string>;
  value: number;
  metricName?: string;
}

type Kind = 'counter' | 'gauge' | 'histogram';

/** A metric family whose values come from elsewhere, in prom-client's registry format. */
class External {
  readonly aggregator = 'sum';
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: Kind,
    private readonly values: (s: HelperStats | undefined) => Sample[],
    private readonly stats: () => Promise<HelperStats | undefined>,
  ) {}
  async get() {
    return { name: this.name, help: this.help, type: this.type, values: this.values(await this.stats()) };
  }
  reset(): void {}
}

export interface UdpMetricsSource {
  up(): boolean;
  restarts(): number;
  /** Fresh counters (one request per scrape, however many families ask). */
  stats(): Promise<HelperStats | undefined>;
}

// Upper bounds of the helper's power-of-two buckets (1, 2–3, 4–7, …, 64–127, 128+).
const LE = ['1', '3', '7', '15', '31', '63', '127', '+Inf'];
const CALLS = { tun_read: 'tun_read', tx_send: 'send', rx_recv: 'recv', rx_write: 'tun_write' } as const;

function histogramSamples(name: string, call: string, h: BatchHistogram): Sample[] {
  let cum = 0;
  const out: Sample[] = LE.map((le, i) => {
    cum += h.counts[i] ?? 0;
    return { metricName: `${name}_bucket`, labels: { call, le }, value: cum };
  });
  out.push({ metricName: `${name}_sum`, labels: { call }, value: h.sum });
  out.push({ metricName: `${name}_count`, labels: { call }, value: cum });
  return out;
}

export function registerUdpMetrics(registry: Registry, src: UdpMetricsSource): void {
  const dirs = (st: HelperStats | undefined, f: (x: HelperStats, d: 'tx' | 'rx') => number): Sample[] =>
    st ? (['tx', 'rx'] as const).map((d) => ({ labels: { direction: d }, value: f(st, d) })) : [];
  const families: [string, string, Kind, (st: HelperStats | undefined) => Sample[]][] = [
    [
      'weft_udp_datapath_up',
      '1 while the udp data path (weft-udp) runs and answers',
      'gauge',
      () => [{ labels: {}, value: src.up() ? 1 : 0 }],
    ],
    [
      'weft_udp_datapath_restarts_total',
      'Times the agent restarted a udp data path that had exited, crashed or stopped answering',
      'counter',
      () => [{ labels: {}, value: src.restarts() }],
    ],
    [
      'weft_udp_packets_total',
      'Inner packets carried: tx = sent to peers (after segmentation), rx = received from peers',
      'counter',
      (st) => dirs(st, (x, d) => x[d].packets),
    ],
    [
      'weft_udp_bytes_total',
      'Bytes of the inner packets carried',
      'counter',
      (st) => dirs(st, (x, d) => x[d].bytes),
    ],
    [
      'weft_udp_syscalls_total',
      'System calls of the data path, by call',
      'counter',
      (st) => {
        if (!st) return [];
        const v = {
          send: st.tx.syscalls,
          tun_read: st.tx.tunReads,
          recv: st.rx.syscalls,
          tun_write: st.rx.tunWrites,
        };
        return Object.entries(v).map(([call, value]) => ({ labels: { call }, value }));
      },
    ],
    [
      'weft_udp_dropped_packets_total',
      'Packets the data path dropped, by direction and reason (not_peer, short, bad_length, no_route, too_big, …)',
      'counter',
      (st) =>
        Object.entries(st?.drops ?? {}).map(([reason, d]) => ({
          labels: { direction: d.direction, reason },
          value: d.packets,
        })),
    ],
    [
      'weft_udp_icmp_errors_sent_total',
      'ICMP errors sent back to senders (net_unreachable, frag_needed, time_exceeded)',
      'counter',
      (st) => Object.entries(st?.icmp ?? {}).map(([type, value]) => ({ labels: { type }, value })),
    ],
    [
      'weft_udp_batch_packets',
      'Inner packets moved per system call: tun_read (TSO super-packets), send (UDP GSO), recv (UDP GRO), tun_write (coalesced)',
      'histogram',
      (st) =>
        st
          ? Object.entries(CALLS).flatMap(([k, call]) =>
              histogramSamples('weft_udp_batch_packets', call, st.batches[k as keyof typeof CALLS]),
            )
          : [],
    ],
  ];
  // prom-client formats any object with name, help, type and get(); these read their values at scrape.
  for (const [name, help, kind, values] of families)
    registry.registerMetric(new External(name, help, kind, values, () => src.stats()) as unknown as Metric);
}
