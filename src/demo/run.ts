import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { weftVersion } from '../bench/run.js';
import { labDown, listLabs, readState, type LabState } from '../lab/lab.js';
import { describeError, WeftError } from '../util/errors.js';
import { checkClaims } from './claims.js';
import type { DemoContext } from './context.js';
import { renderDemoHtml } from './html.js';
import { limits } from './limits.js';
import { mitigate } from './mitigate.js';
import { provision } from './provision.js';
import { quantify, rowFigure } from './quantify.js';
import {
  DEMO_SCHEMA_ID,
  demoSchemaErrors,
  type DemoResult,
  type StepId,
  type StepResult,
  type StepStatus,
} from './result.js';
import { formatSummary, formatTable1 } from './text.js';
import { traceRoundTrip } from './trace-step.js';
import { labTracer, type DemoTracer } from './tracer.js';

/**
 * `weft demo`: the talk in one command. Provision (a Magnum template as a lab on Neutron) → trace a
 * round trip → quantify (one bench run beside the talk's table) → the limits from the container's
 * side, with evidence → mitigate live (switch to neutron, pods kept). Prints a text summary as it goes,
 * writes OUT/result.json (weft-demo/v1), OUT/report.html and OUT/bench/, and removes the lab (unless
 * --keep), also on failure.
 */
export interface DemoOptions {
  underlay: 'neutron' | 'flat';
  out: string;
  name: string;
  template: string;
  seconds: number;
  repetitions: number;
  keep: boolean;
  /** The tracer (default: weft trace on the lab, tracer.ts). */
  tracer?: DemoTracer;
  write?: (line: string) => void;
}

export const DEFAULT_TEMPLATE = fileURLToPath(
  new URL('../../../examples/magnum-flannel.yaml', import.meta.url),
);

const TITLES: Record<StepId, string> = {
  provision: '1. Provision a cluster from a Magnum template',
  trace: '2. Trace pod → service VIP → pod over vxlan',
  quantify: "3. Quantify: one bench run beside the talk's table",
  limits: "4. Limits from the container's side",
  mitigate: '5. Mitigate live: switch to neutron',
};

export async function runDemo(o: DemoOptions): Promise<DemoResult> {
  const write = o.write ?? ((l: string) => process.stdout.write(`${l}\n`));
  const t0 = performance.now();
  const since = () => ((performance.now() - t0) / 1000).toFixed(0).padStart(4);
  const ctx: DemoContext = {
    lab: o.name,
    underlay: o.underlay,
    out: o.out,
    seconds: o.seconds,
    repetitions: o.repetitions,
    tracer: o.tracer ?? labTracer,
    say: (l = '') => write(l),
    progress: (m) => write(`   [${since()} s] ${m}`),
  };
  await mkdir(o.out, { recursive: true });
  const r: DemoResult = {
    schema: DEMO_SCHEMA_ID,
    tool: { name: 'weft', version: await weftVersion() },
    startedAt: new Date().toISOString(),
    finishedAt: '',
    seconds: 0,
    underlay: o.underlay,
    lab: o.name,
    settings: { seconds: o.seconds, repetitions: o.repetitions, keep: o.keep },
    ok: false,
    steps: [],
    traces: [],
    limits: [],
    claims: [],
  };
  write(`== weft demo: the talk "Optimizing and Extending Overlay Networking for Containers" (Tokyo 2015)`);
  write(
    `   on ${o.underlay === 'neutron' ? 'real OpenStack Neutron (2 hypervisors, a tenant network behind a router)' : 'a flat lab (no Neutron: a quick run)'}; output in ${o.out}/`,
  );

  /** Runs one step: its status from what it returns, a failure recorded (and the rest skipped). */
  const step = async (id: StepId, fn: () => Promise<{ status?: StepStatus; summary: string }>) => {
    write('');
    write(`== ${TITLES[id]}`);
    const ts = performance.now();
    const rec: StepResult = { id, title: TITLES[id], status: 'passed', seconds: 0, summary: '' };
    r.steps.push(rec);
    try {
      const res = await fn();
      rec.status = res.status ?? 'passed';
      rec.summary = res.summary;
    } catch (e) {
      rec.status = 'failed';
      rec.error = describeError(e);
      rec.summary = 'failed';
      write(`   FAILED: ${rec.error}`);
    }
    rec.seconds = Math.round((performance.now() - ts) / 100) / 10;
    return rec.status !== 'failed';
  };

  let s: LabState | undefined;
  let vxlanPodMtu = 0;
  try {
    // Only a lab that is up carries on; after it, a step that fails (a row not measured, a limit not
    // shown) is recorded and the others still run: each switches the lab to the backend it needs.
    const up = await step('provision', async () => {
      const p = await provision(ctx, o.template);
      s = p.state;
      r.provision = p.result;
      const pp = p.result.podPairs;
      return {
        status: pp.answered === pp.total ? 'passed' : 'failed',
        summary: `${p.result.nodes.length} nodes on ${p.result.underlay}, backend ${p.result.backend}; ${pp.answered}/${pp.total} pod pairs answered right after lab up`,
      };
    });
    // The mitigation starts from where the limits left the lab (plain host-gw, the vxlan MTU known).
    let limitsRan = false;
    if (up) {
      await step('trace', async () => {
        const t = await traceRoundTrip(ctx, s!, false);
        r.traces.push(t);
        return {
          status: t.status === 'traced' ? 'passed' : 'failed',
          summary:
            t.status === 'traced'
              ? `${t.verdict}: ${t.why}; round trip ${t.rttUs?.toFixed(0) ?? '?'} µs, path MTU ${t.pathMtu ?? '?'}`
              : (t.reason ?? t.status),
        };
      });
      await step('quantify', async () => {
        const q = await quantify(ctx, s!).finally(async () => (s = await readState(s!.name).catch(() => s)));
        r.quantify = q.result;
        write('');
        for (const l of formatTable1(q.result.rows).trimEnd().split('\n')) write(`   ${l}`);
        const bad = q.result.rows.filter((x) => x.status === 'failed');
        return {
          status: bad.length ? 'failed' : 'passed',
          summary: q.result.rows.map((x) => `${x.id} ${rowFigure(x)}`).join('; '),
        };
      });
      await step('limits', async () => {
        const l = await limits(ctx, s!);
        limitsRan = true;
        s = l.state;
        vxlanPodMtu = l.vxlanPodMtu;
        r.limits = l.limits;
        const notShown = l.limits.filter((x) => x.status === 'not-shown');
        return {
          status: notShown.length ? 'failed' : 'passed',
          summary: l.limits.map((x) => `${x.id}: ${x.status}`).join('; '),
        };
      });
    }
    if (limitsRan)
      await step('mitigate', async () => {
        if (!s!.neutron) {
          write(
            '   not applicable: the mitigation is Neutron routing the pods (run weft demo without --underlay flat)',
          );
          r.traces.push({
            backend: 'neutron',
            status: 'not-applicable',
            reason: 'no Neutron on this underlay',
          });
          return {
            status: 'not-applicable',
            summary: 'needs Neutron: run weft demo without --underlay flat',
          };
        }
        const m = await mitigate(ctx, s!, { podMtu: vxlanPodMtu, quantify: r.quantify });
        s = m.state;
        r.mitigation = m.result;
        r.traces.push(m.trace);
        const x = m.result;
        const fine =
          m.trace.status === 'traced' &&
          x.podsKept &&
          x.podPairs.answered === x.podPairs.total &&
          x.external.reached &&
          x.df.passed &&
          x.df.failed;
        return {
          status: fine ? 'passed' : 'failed',
          summary: `pods kept ${x.podsKept}, ${x.podPairs.answered}/${x.podPairs.total} pairs, MTU ${x.mtu.before} → ${x.mtu.after}, external host ${x.external.reached ? 'reaches' : 'does not reach'} a pod`,
        };
      });
  } finally {
    if (o.keep) write(`\n   lab kept: weft lab status --name ${o.name}; weft lab down --name ${o.name}`);
    // Whatever lab up made, also when it failed half-way (the lab's directory and journal exist).
    else if ((await listLabs()).includes(o.name))
      await labDown(o.name, (m) => write(`\n   ${m}`)).catch((e: unknown) =>
        write(`   lab down: ${describeError(e)}`),
      );
  }
  r.claims = checkClaims(r);
  r.finishedAt = new Date().toISOString();
  r.seconds = Math.round(performance.now() - t0) / 1000;
  r.ok = r.steps.length === 5 && r.steps.every((x) => x.status !== 'failed');
  const errs = demoSchemaErrors(r);
  if (errs.length)
    throw new WeftError(`internal error: the demo result breaks its own schema: ${errs.join('; ')}`);
  await writeFile(join(o.out, 'result.json'), JSON.stringify(r, null, 2) + '\n');
  await writeFile(join(o.out, 'report.html'), renderDemoHtml(r));
  write(formatSummary(r));
  write(`   wrote ${join(o.out, 'result.json')}, ${join(o.out, 'report.html')} and ${join(o.out, 'bench')}/`);
  return r;
}
