import { iperf3 } from '../bench/tools.js';
import { labSwitchBackend, type LabState } from '../lab/lab.js';
import { neutronView } from '../lab/neutron-evidence.js';
import { NEUTRON_URL } from '../lab/neutron-underlay.js';
import type { DemoContext } from './context.js';
import { firstPod, limitEnds } from './limits.js';
import { dfPing, mtuOf, ping, podIdentities, podPairs, seenSource } from './probe.js';
import type { Evidence, MitigationResult, QuantifyResult, TraceStepResult } from './result.js';
import { traceRoundTrip } from './trace-step.js';

/**
 * Step 5: the running cluster switched to `neutron` without restarting its pods; then what changed,
 * each measured: the trace (no encapsulation), the pod MTU (the network's 1450), the throughput, the
 * external host reaching a pod directly, and what weft asked of Neutron (from Neutron's API).
 */
export async function mitigate(
  ctx: DemoContext,
  s0: LabState,
  before: { podMtu: number; quantify: QuantifyResult | undefined },
): Promise<{ state: LabState; result: MitigationResult; trace: TraceStepResult }> {
  const from = s0.backend;
  const ids = await podIdentities(s0);
  const t0 = performance.now();
  const s = await labSwitchBackend(s0.name, 'neutron', ctx.progress);
  const switchSeconds = Math.round(performance.now() - t0) / 1000;
  const pairs = await podPairs(s);
  const after = await podIdentities(s);
  const podsKept = JSON.stringify(ids) === JSON.stringify(after);
  ctx.say(
    `   switched ${from} → neutron in ${switchSeconds} s, pods kept (same namespaces, interfaces, addresses): ${podsKept ? 'yes' : 'NO'}; ${pairs.answered}/${pairs.total} pod pairs answer one ping at once`,
  );
  const evidence: Evidence[] = [
    {
      kind: 'command',
      what: 'pods before the switch (name, IP, netns inode, eth0 ifindex)',
      output: ids.join('\n'),
    },
    { kind: 'command', what: 'pods after the switch', output: after.join('\n') },
  ];

  const trace = await traceRoundTrip(ctx, s, true);

  const { a, b, c } = limitEnds(s);
  const [p, q] = [firstPod(s, a), firstPod(s, b)];
  const podMtu = await mtuOf(p.netns);
  const pass = await dfPing(p.netns, q.ip, podMtu);
  const fail = await dfPing(p.netns, q.ip, podMtu + 1);
  evidence.push(pass.evidence, fail.evidence);
  ctx.say(
    `   pod MTU ${before.podMtu} → ${podMtu}: a ${podMtu}-byte DF packet ${pass.ok ? 'passes' : 'FAILS'}, ${podMtu + 1} ${fail.ok ? 'PASSES' : 'fails'}`,
  );

  ctx.progress(`live: ${p.name} → ${q.name}, iperf3 1 stream ${ctx.seconds} s`);
  const live = await iperf3(
    { name: p.name, netns: p.netns, ip: p.ip },
    { name: q.name, netns: q.netns, ip: q.ip },
    { streams: 1, seconds: ctx.seconds, warmup: 1, port: 5211 },
  ).catch(() => undefined);
  const row = (id: string) => before.quantify?.rows.find((r) => r.id === id);
  const throughput = {
    ...(row('vxlan')?.gbps !== undefined && { vxlanGbps: row('vxlan')!.gbps! }),
    ...(row('neutron')?.gbps !== undefined && { neutronGbps: row('neutron')!.gbps! }),
    ...(row('native')?.gbps !== undefined && { nativeGbps: row('native')!.gbps! }),
    ...(live && { liveGbps: live.gbps }),
  };
  if (live)
    evidence.push({
      kind: 'measurement',
      what: `iperf3 -c ${q.ip} -t ${ctx.seconds} (from ${p.name})`,
      output: `${live.gbps.toFixed(2)} Gbit/s`,
    });
  ctx.say(
    `   throughput pod → pod: vxlan ${fmt(throughput.vxlanGbps)} → neutron ${fmt(throughput.neutronGbps)} Gbit/s in the bench (native ${fmt(throughput.nativeGbps)}); live now ${fmt(throughput.liveGbps)}`,
  );

  const target = firstPod(s, c ?? b);
  const ext = await ping(s.external.netns, target.ip, 2);
  const seen = ext.ok ? await seenSource(s.external.netns, target) : undefined;
  evidence.push(ext.evidence, {
    kind: 'command',
    what: `TCP from ${s.external.netns} to ${target.ip}: the address the pod's server sees`,
    output: seen ?? 'no connection',
  });
  ctx.say(
    `   external host ${s.external.ip} → pod ${target.name} (${target.ip}): ${ext.ok ? 'reached' : 'NOT reached'}${seen ? `, the pod sees ${seen} (${seen === s.external.ip ? 'no NAT on the way in' : 'translated'})` : ''}`,
  );

  const v = await neutronView(s);
  const asked = {
    ports: v.ports.map((x) => ({
      node: x.node,
      portId: x.portId,
      portSecurity: x.portSecurity,
      pairs: x.pairs,
    })),
    routes: v.routes,
  };
  evidence.push(
    {
      kind: 'neutron-api',
      what: `GET ${NEUTRON_URL}/v2.0/ports/{id} for every node port → port_security_enabled, allowed_address_pairs`,
      output: asked.ports
        .map(
          (x) =>
            `${x.node} ${x.portId}: port security ${x.portSecurity ? 'on' : 'off'}, pairs ${x.pairs.join(', ') || 'none'}`,
        )
        .join('\n'),
    },
    {
      kind: 'neutron-api',
      what: `GET ${NEUTRON_URL}/v2.0/routers/${v.routerId} → routes`,
      output: v.routes.map((x) => `${x.destination} via ${x.nexthop}`).join('\n') || 'none',
    },
  );
  ctx.say('   what weft asked of Neutron:');
  for (const x of asked.ports)
    ctx.say(
      `     port ${x.portId.slice(0, 8)} (${x.node}): port security ${x.portSecurity ? 'on' : 'off'}, address pairs ${x.pairs.join(', ') || 'none'}`,
    );
  for (const r of asked.routes) ctx.say(`     router route ${r.destination} via ${r.nexthop}`);

  return {
    state: s,
    trace,
    result: {
      from,
      to: 'neutron',
      switchSeconds,
      podsKept,
      mtu: { before: before.podMtu, after: podMtu },
      df: { passes: podMtu, passed: pass.ok, fails: podMtu + 1, failed: !fail.ok },
      throughput,
      external: { reached: ext.ok, ...(seen && { seenSource: seen }), pod: target.name },
      podPairs: { total: pairs.total, answered: pairs.answered },
      asked,
      evidence,
    },
  };
}

const fmt = (x: number | undefined) => (x === undefined ? '–' : x.toFixed(2));
