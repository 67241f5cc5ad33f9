import { pickNodes } from '../bench/paths.js';
import type { LabState } from '../lab/lab.js';
import { findService } from '../lab/services.js';
import type { TraceResult } from '../trace/types.js';
import { describeError } from '../util/errors.js';
import type { DemoContext } from './context.js';
import type { TraceCheck, TraceHopView, TraceStepResult } from './result.js';
import type { DemoService } from './tracer.js';

/**
 * Steps 2 and 5: one round trip pod → service VIP → pod on another node (on Neutron: another
 * hypervisor), traced hop by hop: the DNAT hop on the sender's node, the encapsulations around the
 * probe at every hop, per-hop times. Step 2 runs on vxlan (on Neutron: weft's VXLAN inside Neutron's);
 * step 5 again after the switch to neutron (no encapsulation of weft's, the network's 1450 MTU).
 * Each trace is checked against what the talk says it shows; a check that fails fails the step.
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
  try {
    const service = again
      ? await existingService(s.name, endpoint)
      : await ctx.tracer.service(s.name, SERVICE, endpoint, SERVICE_PORT);
    if (!again)
      ctx.say(
        `   service ${service.name}: ClusterIP ${service.vip}:${service.port} → ${endpoint}:${service.targetPort} (kube-proxy's nftables rules on every node)`,
      );
    const tr = await ctx.tracer.trace(s.name, from, SERVICE);
    const view = traceView(tr);
    const checks = traceChecks(view, tr, service, s);
    ctx.say(`   weft trace --name ${s.name} ${from} ${SERVICE}: ${tr.summary.verdict}: ${tr.summary.why}`);
    for (const h of view.hops) ctx.say(`     ${hopLine(h)}`);
    ctx.say(
      `   round trip ${view.rttUs?.toFixed(0) ?? '?'} µs, path MTU ${view.pathMtu ?? '?'}; ${view.segments.map((x) => `${x.segment} ${x.us.toFixed(0)} µs`).join(', ')}`,
    );
    for (const c of checks) ctx.say(`   [${c.ok ? 'ok' : 'NOT SHOWN'}] ${c.what}`);
    return {
      ...base,
      ...view,
      service: { name: service.name, vip: service.vip, port: service.port },
      checks,
      status: tr.summary.verdict === 'delivered' && checks.every((c) => c.ok) ? 'traced' : 'failed',
      ...(checks.some((c) => !c.ok) && {
        reason: `not shown: ${checks
          .filter((c) => !c.ok)
          .map((c) => c.what)
          .join('; ')}`,
      }),
    };
  } catch (e) {
    ctx.say(`   trace failed: ${describeError(e)}`);
    return { ...base, status: 'failed', reason: describeError(e) };
  }
}

async function existingService(lab: string, endpoint: string): Promise<DemoService> {
  const svc = await findService(lab, SERVICE);
  if (!svc) throw new Error(`the lab has no service ${SERVICE} any more (step 2 made it)`);
  return { name: svc.name, vip: svc.vip, port: svc.port, endpoint, targetPort: svc.targetPort };
}

/** One hop in the text summary: direction, time since the probe left (+ since the previous hop), where, what. */
export function hopLine(h: TraceHopView): string {
  const t = `+${h.tUs.toFixed(0)} µs`.padStart(9);
  const dt = `(+${h.dtUs.toFixed(0)})`.padStart(8);
  const where = `${h.host}/${h.device}`.padEnd(26);
  const layers = h.layers.length ? ` [${h.layers.join(' | ')}]` : '';
  return `${h.direction === 'request' ? '→' : '←'} ${t} ${dt} ${where} ${h.event}${layers}${h.nat ? ` ${h.nat}` : ''}${h.drop ? ` DROP ${h.drop}` : ''}`;
}

/** The part of a trace the demo shows. */
export function traceView(tr: TraceResult): Pick<
  TraceStepResult,
  'verdict' | 'why' | 'rttUs' | 'pathMtu' | 'mtuNote'
> & {
  hops: TraceHopView[];
  segments: { segment: string; us: number }[];
} {
  const hops: TraceHopView[] = tr.hops.map((h) => ({
    direction: h.direction,
    host: h.host,
    netns: h.netns,
    device: h.device,
    event: h.event,
    layers: h.outer.map(
      (o) =>
        `${o.kind.toUpperCase()}${o.vni !== undefined ? ` VNI ${o.vni}` : ''}${o.owner ? ` (${o.owner})` : ''} ${o.src}→${o.dst}`,
    ),
    owners: h.outer.map((o) => o.owner ?? 'unknown'),
    ...(h.nat && {
      nat: `${h.nat.kind} ${h.nat.from} → ${h.nat.to}${h.nat.endpoint ? ` (${h.nat.endpoint})` : ''}`,
    }),
    ...(h.drop && { drop: `${h.drop.reason}: ${h.drop.explanation}` }),
    ...(h.mtu !== undefined && { mtu: h.mtu }),
    tUs: h.tNs / 1000,
    dtUs: h.dtNs / 1000,
  }));
  return {
    verdict: tr.summary.verdict,
    why: tr.summary.why,
    ...(tr.summary.rttNs !== undefined && { rttUs: tr.summary.rttNs / 1000 }),
    ...(tr.summary.pathMtu !== undefined && { pathMtu: tr.summary.pathMtu }),
    mtuNote: tr.summary.mtuNote,
    segments: tr.summary.segments.map((x) => ({ segment: x.segment, us: x.ns / 1000 })),
    hops,
  };
}

/**
 * What the trace must show, by backend: the DNAT hop naming the endpoint and its un-DNAT on the way
 * back; on vxlan weft's encapsulation both ways (on Neutron inside Neutron's: two layers between the
 * hypervisors); on neutron no layer of weft's and the network's MTU.
 */
function traceChecks(
  v: ReturnType<typeof traceView>,
  tr: TraceResult,
  svc: DemoService,
  s: LabState,
): TraceCheck[] {
  const ep = s.pods.find((p) => p.name === svc.endpoint);
  const dnat = tr.hops.find((h) => h.nat?.kind === 'DNAT');
  const checks: TraceCheck[] = [
    {
      what: `the DNAT hop: ${svc.vip}:${svc.port} → ${ep?.ip ?? svc.endpoint}:${svc.targetPort} (${svc.endpoint}) on the sender's node`,
      ok: dnat?.direction === 'request' && dnat.nat?.to === `${ep?.ip}:${svc.targetPort}`,
    },
    {
      what: 'the reply un-DNATed back to the service address',
      ok: tr.hops.some((h) => h.direction === 'reply' && h.nat?.kind === 'un-DNAT'),
    },
  ];
  const layersIn = (dir: 'request' | 'reply') =>
    Math.max(0, ...v.hops.filter((h) => h.direction === dir).map((h) => h.layers.length));
  const weftIn = (dir: 'request' | 'reply') =>
    v.hops.some((h) => h.direction === dir && h.owners.includes('weft'));
  if (s.backend === 'vxlan') {
    const want = s.neutron ? 2 : 1;
    for (const dir of ['request', 'reply'] as const)
      checks.push({
        what: `${dir}: ${s.neutron ? "weft's VXLAN inside Neutron's between the hypervisors (two encapsulations)" : "weft's VXLAN between the nodes"}`,
        ok: layersIn(dir) === want && weftIn(dir),
      });
  } else if (s.backend === 'neutron') {
    checks.push(
      {
        what: "no encapsulation of weft's either way (Neutron's own tenant VXLAN between the hypervisors only)",
        ok: !weftIn('request') && !weftIn('reply') && layersIn('request') <= 1 && layersIn('reply') <= 1,
      },
      { what: "path MTU 1450: the tenant network's, all of it the pods'", ok: v.pathMtu === 1450 },
    );
  }
  return checks;
}

/** The drop line of a trace (limit 1's evidence): where the probe died, the kernel's reason, the rule. */
export async function traceDrop(
  ctx: DemoContext,
  s: LabState,
  from: string,
  to: string,
): Promise<{ line: string; dropped: boolean }> {
  try {
    const tr = await ctx.tracer.trace(s.name, from, to);
    // The tracer's own account names the hop, the kernel's reason, the rule and whose rule it is.
    const dropped = tr.hops.some((h) => h.event === 'dropped');
    return { line: dropped ? tr.summary.why : `${tr.summary.verdict}: ${tr.summary.why}`, dropped };
  } catch (e) {
    return { line: `trace failed: ${describeError(e)}`, dropped: false };
  }
}
