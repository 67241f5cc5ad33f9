/**
 * The one seam between the demo and `weft trace` (built on branch `trace`, not on main yet). The demo
 * asks for a round trip pod → service VIP → pod through `DemoTracer`; while no tracer is wired the
 * step is "pending" in the text, the JSON and the report, and everything else runs.
 *
 * Wiring it when the tracer lands is this module alone: set `wiredTracer` to an adapter such as
 *
 *   import { labTrace } from '../trace/run.js';
 *   import { serviceAdd } from '../lab/services.js';
 *   import { readState } from '../lab/lab.js';
 *   export const wiredTracer: DemoTracer = {
 *     service: async (lab, name, endpoint, port) => {
 *       const s = await serviceAdd(await readState(lab), { name, port, to: [endpoint] });
 *       return { name: s.name, vip: s.vip, port: s.port };
 *     },
 *     trace: (lab, from, to) => labTrace(lab, from, to, { proto: 'tcp' }),
 *   };
 *
 * `TraceLike` is the part of the trace result the demo shows (the tracer's TraceResult has it).
 */

export interface TraceLikeHop {
  direction: 'request' | 'reply';
  host: string;
  netns: string;
  role: string;
  device: string;
  event: string;
  inner: { src: string; dst: string; proto: string };
  outer: { kind: string; vni?: number; owner?: string; src: string; dst: string }[];
  nat?: { kind: string; from: string; to: string; endpoint?: string };
  drop?: { reason: string; explanation: string };
  netfilter?: { table: string; chain: string; rule: string; verdict: string }[];
  mtu?: number;
  tNs: number;
}

export interface TraceLike {
  from: { name: string; ip: string };
  to: { name: string; ip: string; port?: number; service?: string };
  hops: TraceLikeHop[];
  summary: { verdict: 'delivered' | 'dropped' | 'lost'; why: string; rttNs?: number; pathMtu?: number };
}

export interface DemoTracer {
  /** A ClusterIP service in front of one endpoint pod (kube-proxy's rules on every node). */
  service(
    lab: string,
    name: string,
    endpoint: string,
    port: number,
  ): Promise<{ name: string; vip: string; port: number }>;
  /** One probe from `from` (a pod) to `to` (a pod or service name), followed through every namespace. */
  trace(lab: string, from: string, to: string): Promise<TraceLike>;
}

/** The tracer, once `weft trace` is on main (see above); undefined until then. */
export const wiredTracer: DemoTracer | undefined = undefined;

/** Why the trace steps are pending, in the demo's words. */
export const TRACER_PENDING =
  'weft trace is not on main yet (branch trace): the round trip is not traced; src/demo/tracer.ts wires it';
