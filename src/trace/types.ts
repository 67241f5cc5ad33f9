/**
 * weft trace's data: what the node-local half (native/trace/loader.c) reports, and the assembled
 * trace a user sees (JSON schema of `weft trace --json`).
 */

export type Proto = 'icmp' | 'tcp' | 'udp';
export const PROTO_NUMBER: Record<Proto, number> = { icmp: 1, tcp: 6, udp: 17 };

/** One IPv4 header (and its transport header) as the BPF programs read it. */
export interface RawLayer {
  src: string;
  dst: string;
  proto: number;
  ttl: number;
  len: number;
  id: number;
  frag: number;
  sport: number;
  dport: number;
  tcpFlags: number;
  seq: number;
  ack: number;
  icmpType: number;
  icmpCode: number;
  encap: 'none' | 'vxlan' | 'udp';
  vni: number;
}

/** A sighting of the probe: a tc hook on a device, or its death in kfree_skb. */
export interface RawHop {
  ev: 'hop';
  kind: 'ingress' | 'egress' | 'drop';
  dir: 'request' | 'reply';
  /** CLOCK_MONOTONIC ns (bpf_ktime_get_ns): one clock for every namespace of a host. */
  ts: number;
  /** Network namespace cookie. */
  netns: string;
  ifindex: number;
  len: number;
  mark: number;
  pktType: number;
  icmpError: boolean;
  /** Outermost first: [Neutron's VXLAN, weft's VXLAN, the probe]. */
  layers: RawLayer[];
  reason?: string;
  reasonCode?: number;
  location?: string;
}

export type LoaderEvent =
  | RawHop
  | { ev: 'ready'; clock: string; now: number; dropReasons: number; pid: number; progIds: number[] }
  | { ev: 'attached'; path: string; netns: string; ifindex: number; ifname: string; mtu: number; l2: boolean }
  | { ev: 'watching'; path: string; netns: string; devices: number }
  | { ev: 'nft-ready'; path: string }
  | { ev: 'nft'; path: string; line: string }
  | { ev: 'armed' | 'disarmed'; ts: number }
  | { ev: 'sent'; ts: number }
  | { ev: 'outcome'; outcome: ProbeOutcome; ts: number; errno: string }
  | { ev: 'probe-set' }
  | { ev: 'stats'; matched: number; links: number; isnKnown: boolean }
  | { ev: 'error'; message: string; path?: string; netns?: string; ifname?: string }
  | { ev: 'bye'; links: number };

/** What the prober's socket saw. */
export type ProbeOutcome =
  'reply' | 'refused' | 'unreachable' | 'ttl-exceeded' | 'timeout' | 'no-route' | 'error';

// ------------------------------------------------------------------------------ the assembled trace

export type Role = 'pod' | 'node' | 'underlay' | 'neutron' | 'external';

export interface Header {
  src: string;
  dst: string;
  proto: string;
  /** TCP/UDP ports; ICMP: id and sequence instead. */
  sport?: number;
  dport?: number;
  icmp?: { type: string; id: number; seq: number };
  tcpFlags?: string;
  len: number;
  ttl: number;
  ipId: number;
}

export interface OuterHeader {
  src: string;
  dst: string;
  udpPort: number;
  /** VXLAN network identifier (undefined for the udp backend's raw IPv4-in-UDP). */
  vni?: number;
  kind: 'vxlan' | 'udp';
  /** Who put it there, when known: "weft" or "neutron". */
  owner?: string;
}

export type HopEvent =
  'sent' | 'received' | 'forwarded' | 'encapsulated' | 'decapsulated' | 'NAT' | 'delivered' | 'dropped';

export interface NetfilterVerdict {
  table: string;
  chain: string;
  rule: string;
  verdict: string;
}

export interface Nat {
  kind: 'DNAT' | 'SNAT' | 'un-DNAT' | 'un-SNAT';
  from: string;
  to: string;
  /** The endpoint pod a DNAT chose. */
  endpoint?: string;
}

export interface Hop {
  seq: number;
  direction: 'request' | 'reply';
  /** The machine: a lab node (its pods are on it), the lab's underlay, a Neutron hypervisor. */
  host: string;
  netns: string;
  role: Role;
  device: string;
  deviceKind: string;
  hook: 'ingress' | 'egress' | 'drop';
  event: HopEvent;
  inner: Header;
  /** Encapsulation around the probe, outermost first (on Neutron with vxlan: Neutron's, then weft's). */
  outer: OuterHeader[];
  nat?: Nat;
  /** A second rewrite at the same hop (a NodePort both DNATs and masquerades). */
  alsoNat?: Nat;
  netfilter?: NetfilterVerdict[];
  drop?: { reason: string; location: string; explanation: string };
  mtu?: number;
  /** Nanoseconds since the probe left the sender, and since the previous hop. */
  tNs: number;
  dtNs: number;
}

export interface Segment {
  segment: string;
  ns: number;
}

export interface TraceSummary {
  verdict: 'delivered' | 'dropped' | 'lost';
  /** In words: what happened, for a human. */
  why: string;
  rttNs?: number;
  segments: Segment[];
  /** Per host: time the request and the reply spent on it (what remains meaningful across real hosts). */
  residence: { host: string; requestNs: number; replyNs: number }[];
  pathMtu?: number;
  mtuNote: string;
  dataPath: { node: string; toward: string; path: string; reason?: string }[];
  outcome: ProbeOutcome;
}

export interface TraceResult {
  lab: string;
  from: { name: string; netns: string; ip: string };
  to: { name: string; ip: string; port?: number; service?: string };
  proto: Proto;
  clock: string;
  /** Whether netfilter rules were traced (their tracing adds time to the hops of nodes with rules). */
  netfilterTraced: boolean;
  hops: Hop[];
  summary: TraceSummary;
  timings: { setupMs: number; probeMs: number; teardownMs: number };
  /** What the trace put into the kernel, all gone when it returns: BPF program ids, links, trace table. */
  kernel: { loaderPid: number; progIds: number[]; links: number; traceTable: string; namespaces: number };
  warnings: string[];
}
