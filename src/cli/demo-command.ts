import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { WeftError } from '../util/errors.js';

/**
 * `weft demo`: the talk in one command (src/demo/run.ts). Real Neutron by default (scripts/install.sh
 * --neutron installs it); `--underlay flat` is a quick run without it.
 */
export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description(
      "the talk in one command: a Magnum cluster on real Neutron, a traced round trip, the overhead beside the talk's table, Flannel's limits with evidence, and the live switch to Neutron routing; writes weft-demo/report.html and result.json",
    )
    .option(
      '--underlay <kind>',
      'neutron (real Neutron, the default) | flat (a quick run without it)',
      'neutron',
    )
    .option('--out <dir>', 'where to write result.json, report.html and bench/', 'weft-demo')
    .option('--name <name>', 'lab name', 'demo')
    .option(
      '--template <file>',
      'the Magnum cluster template to provision (default: examples/magnum-flannel.yaml)',
    )
    .option('--seconds <n>', 'seconds per bench measurement (after a 1 s warm-up)', '3')
    .option('--repetitions <n>', 'repetitions of every bench measurement', '1')
    .option('--keep', 'keep the lab afterwards (weft lab down --name NAME removes it)')
    .option('--schema', 'print the JSON Schema of result.json')
    .action(async (o: Record<string, string | boolean | undefined>) => {
      if (o.schema) {
        const { DEMO_JSON_SCHEMA } = await import('../demo/result.js');
        process.stdout.write(JSON.stringify(DEMO_JSON_SCHEMA, null, 2) + '\n');
        return;
      }
      const underlay = String(o.underlay);
      if (underlay !== 'neutron' && underlay !== 'flat')
        throw new WeftError(`--underlay: "${underlay}" is not neutron or flat`, {
          hint: 'weft demo (real Neutron) or weft demo --underlay flat (quick, no Neutron)',
        });
      if (underlay === 'neutron' && !existsSync('/usr/bin/neutron-server'))
        throw new WeftError('the demo runs on real Neutron, which is not installed', {
          hint: 'bash scripts/install.sh --neutron (or a quick run without it: weft demo --underlay flat)',
        });
      const positive = (k: string, max: number): number => {
        const v = Number(o[k]);
        if (!Number.isInteger(v) || v < 1 || v > max)
          throw new WeftError(`--${k}: "${String(o[k])}" is not an integer from 1 to ${max}`);
        return v;
      };
      const { runDemo, DEFAULT_TEMPLATE } = await import('../demo/run.js');
      const res = await runDemo({
        underlay,
        out: String(o.out),
        name: String(o.name),
        template: typeof o.template === 'string' ? o.template : DEFAULT_TEMPLATE,
        seconds: positive('seconds', 600),
        repetitions: positive('repetitions', 20),
        keep: o.keep === true,
      });
      process.exitCode = res.ok ? 0 : 1;
    });
}
