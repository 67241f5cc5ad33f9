import { pickNodes } from '../bench/paths.js';
import type { LabState } from '../lab/lab.js';
import { describeError } from '../util/errors.js';
import type { DemoContext } from './context.js';
import type { TraceHopView, TraceStepResult } from './result.js';
import { TRACER_PENDING, type TraceLike } from './tracer.js';

/**
 * Steps 2 and 5: one round trip pod → service VIP → pod on another hypervisor, traced hop by hop
 * (both encapsulations, the DNAT hop, per-hop times), or "pending" while no tracer is wired.
 */

/** The two ends: a pod of the first node and one of the node the bench pairs it with (another hypervisor). */
export function traceEnds(s: LabState): { from: string; endpoint: string } {
  const [a, b] = pickNodes(s) ?? [s.nodes[0]!, s.nodes[1]!];
  return {
    from: s.pods.find((p) => p.node === a.name)!.name,
    endpoint: s.pods.find((p) => p.node === b.name)!.name,
  };
}

const SERVICE = 'web';
const SERVICE_PORT = 80;

export async function traceRoundTrip(
  ctx: DemoContext,
  s: LabState,
  again: boolean,
): Promise<TraceStepResult> {
  const { from, endpoint } = traceEnds(s);
  const base = { backend: s.backend, from, to: `${SERVICE} → ${endpoint}` };
  if (!ctx.tracer) {
    ctx.say(`   pending: ${TRACER_PENDING}`);
    return { ...base, status: 'pending', reason: TRACER_PENDING };
  }
  try {
    const service = again
      ? { name: SERVICE, vip: '', port: SERVICE_PORT }
      : await ctx.tracer.service(s.name, SERVICE, endpoint, SERVICE_PORT);
    const tr = await ctx.tracer.trace(s.name, from, SERVICE);
    const view = traceView(tr);
    ctx.say(`   ${from} → ${SERVICE} (${tr.to.ip}) → ${endpoint}: ${tr.summary.verdict}: ${tr.summary.why}`);
    for (const h of view.hops ?? [])
      ctx.say(
        `     ${h.direction === 'request' ? '→' : '←'} ${`+${h.tUs.toFixed(0)} µs`.padStart(10)} ${h.host}/${h.device} ${h.event}${h.layers.length ? ` [${h.layers.join(' | ')}]` : ''}${h.nat ? ` ${h.nat}` : ''}${h.drop ? ` DROP ${h.drop}` : ''}`,
      );
    return {
      ...base,
      ...view,
      service: service.vip ? service : { ...service, vip: tr.to.ip },
      status: 'traced',
    };
  } catch (e) {
    ctx.say(`   trace failed: ${describeError(e)}`);
    return { ...base, status: 'failed', reason: describeError(e) };
  }
}

/** The part of a trace the demo shows. */
export function traceView(
  tr: TraceLike,
): Pick<TraceStepResult, 'verdict' | 'why' | 'rttUs' | 'pathMtu' | 'hops'> {
  const hops: TraceHopView[] = tr.hops.map((h) => ({
    direction: h.direction,
    host: h.host,
    device: h.device,
    event: h.event,
    layers: h.outer.map(
      (o) =>
        `${o.kind.toUpperCase()}${o.vni !== undefined ? ` VNI ${o.vni}` : ''}${o.owner ? ` (${o.owner})` : ''} ${o.src}→${o.dst}`,
    ),
    ...(h.nat && {
      nat: `${h.nat.kind} ${h.nat.from} → ${h.nat.to}${h.nat.endpoint ? ` (${h.nat.endpoint})` : ''}`,
    }),
    ...(h.drop && { drop: `${h.drop.reason}: ${h.drop.explanation}` }),
    tUs: h.tNs / 1000,
  }));
  return {
    verdict: tr.summary.verdict,
    why: tr.summary.why,
    ...(tr.summary.rttNs !== undefined && { rttUs: tr.summary.rttNs / 1000 }),
    ...(tr.summary.pathMtu !== undefined && { pathMtu: tr.summary.pathMtu }),
    hops,
  };
}

/** The drop line of a trace (limit 1's evidence once the tracer is wired). */
export async function traceDrop(
  ctx: DemoContext,
  s: LabState,
  from: string,
  to: string,
): Promise<string | undefined> {
  if (!ctx.tracer) return undefined;
  try {
    const tr = await ctx.tracer.trace(s.name, from, to);
    const d = tr.hops.find((h) => h.event === 'dropped');
    return d
      ? `${d.host}/${d.device} (${d.netns}) dropped: ${d.drop?.reason ?? ''}: ${d.drop?.explanation ?? ''}`
      : tr.summary.why;
  } catch (e) {
    return `trace failed: ${describeError(e)}`;
  }
}
