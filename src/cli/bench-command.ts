import type { Command } from 'commander';
import { BENCH_BACKEND_IDS } from '../bench/backends.js';
import { WeftError } from '../util/errors.js';
import { onlyLab } from './only-lab.js';

/** `weft bench`: a thin layer over src/bench. */
export function registerBench(program: Command): void {
  program
    .command('bench')
    .description("measure each data path's throughput, latency and CPU against native on a running lab")
    .option('--name <lab>', 'the lab to measure (default: the only lab)')
    .option(
      '--backends <list>',
      `comma-separated, from ${BENCH_BACKEND_IDS.join(', ')} (default: what the underlay allows)`,
    )
    .option('--quick', 'about 1 s per measurement and one repetition: a smoke run')
    .option('--reference', 'also measure hand-built paths (plain ip commands, no agent) in the same run')
    .option(
      '--fast-path',
      'also measure every backend with the BPF fast path on (rows vxlan+bpf, host-gw+bpf)',
    )
    .option('--seconds <n>', 'seconds per measurement, after a 1 s warm-up (default 10)')
    .option('--repetitions <n>', 'repetitions of every measurement (default 3)')
    .option('--out <dir>', 'where to write result.json and report.html', 'weft-bench')
    .option('--compare <files...>', 'print the difference between two result.json files (A B)')
    .option('--schema', 'print the JSON Schema of result.json')
    .option('--report <result.json>', 'write report.html for an existing result into --out')
    .action(async (o: Record<string, string | string[] | boolean | undefined>) => {
      if (o.schema) {
        const { RESULT_JSON_SCHEMA } = await import('../bench/result.js');
        process.stdout.write(JSON.stringify(RESULT_JSON_SCHEMA, null, 2) + '\n');
        return;
      }
      if (typeof o.report === 'string') {
        const { readResult, writeReport } = await import('../bench/output.js');
        process.stdout.write(`wrote ${await writeReport(String(o.out), await readResult(o.report))}\n`);
        return;
      }
      if (o.compare) {
        const files = o.compare as string[];
        if (files.length !== 2)
          throw new WeftError('--compare takes two result files', {
            hint: 'weft bench --compare A.json B.json',
          });
        const { readResult } = await import('../bench/output.js');
        const { formatComparison } = await import('../bench/text.js');
        const [a, b] = [await readResult(files[0]!), await readResult(files[1]!)];
        process.stdout.write(formatComparison(a, b, [files[0]!, files[1]!]));
        return;
      }
      const positive = (k: string): number | undefined => {
        if (o[k] === undefined) return undefined;
        const v = Number(o[k]);
        if (!Number.isInteger(v) || v < 1)
          throw new WeftError(`--${k}: "${String(o[k])}" is not a positive integer`);
        return v;
      };
      const backends =
        typeof o.backends === 'string'
          ? o.backends.split(',').map((b) => {
              if (!BENCH_BACKEND_IDS.includes(b))
                throw new WeftError(`--backends: unknown backend "${b}"`, {
                  hint: `use ${BENCH_BACKEND_IDS.join(', ')}`,
                });
              return b;
            })
          : undefined;
      const lab = typeof o.name === 'string' ? o.name : await onlyLab();
      const { runBench } = await import('../bench/run.js');
      const { writeOutputs } = await import('../bench/output.js');
      const { formatResult } = await import('../bench/text.js');
      const { killServers } = await import('../bench/tools.js');
      const { destroyReferences } = await import('../bench/reference.js');
      // Ctrl-C: no measuring server may outlive the bench.
      for (const sig of ['SIGINT', 'SIGTERM'] as const)
        process.once(sig, () => {
          killServers();
          void destroyReferences().finally(() => process.exit(130));
          process.stderr.write(
            `[bench] interrupted; the lab may be left on another backend: weft lab backend --name ${lab} …\n`,
          );
        });
      const res = await runBench({
        lab,
        backends,
        quick: o.quick === true,
        reference: o.reference === true,
        fastPath: o.fastPath === true,
        seconds: positive('seconds'),
        repetitions: positive('repetitions'),
        progress: (m) => process.stderr.write(`[bench] ${m}\n`),
      });
      const out = await writeOutputs(String(o.out), res);
      process.stdout.write(formatResult(res) + `\nwrote ${out.json} and ${out.html}\n`);
    });
}
