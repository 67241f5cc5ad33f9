import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readState } from '../../src/lab/lab.js';
import { schemaErrors, type BenchResult } from '../../src/bench/result.js';
import { run } from '../../src/util/exec.js';
import { upLab } from '../helpers/lab.js';
import { openOffline } from '../helpers/browser.js';

const WEFT = fileURLToPath(new URL('../../src/cli/weft.js', import.meta.url));
const weft = (args: string[]) =>
  run(process.execPath, [WEFT, ...args], { allowFailure: true, timeoutMs: 600_000 });

/**
 * A short bench (1 s per measurement, one repetition) on a 2-node flat lab, through the CLI as a user
 * runs it. It checks what the run produces, never how fast anything is.
 */
test(
  'weft bench: a quick run on a 2-node lab gives a valid result, a table and a report with charts',
  { timeout: 600_000 },
  async (t) => {
    // One pod per node: the bench must attach the second pod it needs on the first node itself.
    const { state, down } = await upLab({ nodes: 2, podsPerNode: 1, underlay: 'flat', backend: 'vxlan' });
    t.after(down);
    const out = await mkdtemp(join(tmpdir(), 'weft-bench-'));
    t.after(() => rm(out, { recursive: true, force: true }));

    const r = await weft(['bench', '--name', state.name, '--quick', '--reference', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(await readFile(join(out, 'result.json'), 'utf8')) as BenchResult;

    await t.test('result.json validates against the schema and covers every path', () => {
      assert.deepEqual(schemaErrors(res), []);
      assert.equal(res.schema, 'weft-bench/v1');
      assert.deepEqual(
        res.paths.map((p) => p.id),
        [
          'native',
          'same-node',
          'cross-node/vxlan',
          'cross-node/host-gw',
          'reference/native',
          'reference/routed',
          'reference/vxlan',
          'reference/flannel-routed',
          'reference/flannel-vxlan',
        ],
      );
      for (const p of res.paths) {
        assert.equal(p.status, 'ok', `${p.id}: ${p.reason ?? ''}`);
        assert.ok(p.tcp1!.gbps.median > 0 && p.tcp4!.gbps.median > 0, `${p.id}: throughput above zero`);
        assert.ok(p.latency!.p50Us.median > 0, `${p.id}: a round trip`);
        for (const k of ['tcp1', 'tcp4', 'latencyP50', 'cpuPerGbps'] as const)
          assert.equal(typeof p.ratios[k], 'number', `${p.id}: ratio ${k}`);
      }
      assert.equal(res.paths[0]!.ratios.tcp1, 1);
      assert.ok(res.environment.kernel && res.environment.cpus > 0 && res.environment.underlayMtu === 1500);
      assert.ok(Object.keys(res.environment.offloads).length > 0, 'offload state recorded');
    });

    await t.test(
      'hops carry their MTUs: vxlan crosses an overlay device at 1450, host-gw none at 1500',
      () => {
        const vx = res.paths.find((p) => p.id === 'cross-node/vxlan')!;
        const hg = res.paths.find((p) => p.id === 'cross-node/host-gw')!;
        assert.deepEqual(
          vx.hops.filter((h) => h.kind === 'overlay').map((h) => [h.device, h.mtu]),
          [
            ['weft.1', 1450],
            ['weft.1', 1450],
          ],
        );
        assert.equal(vx.hops[0]!.mtu, 1450, 'pod MTU on vxlan');
        assert.ok(!hg.hops.some((h) => h.kind === 'overlay'));
        assert.ok(hg.hops.every((h) => h.mtu === 1500));
      },
    );

    await t.test(
      'the hand-built reference is compared with weft and leaves no namespace behind',
      async () => {
        assert.match(r.stdout, /pod → pod, host-gw vs hand-built routed: throughput ×\d+\.\d\d/);
        assert.match(r.stdout, /pod → pod, vxlan vs hand-built vxlan: throughput ×\d+\.\d\d/);
        assert.match(r.stdout, /pod → pod, host-gw vs Flannel as built, routed: throughput ×\d+\.\d\d/);
        assert.match(r.stdout, /pod → pod, vxlan vs Flannel as built, vxlan: throughput ×\d+\.\d\d/);
        const ns = (await run('ip', ['netns', 'list'])).stdout;
        assert.doesNotMatch(ns, /^wb-/m);
      },
    );

    await t.test('the terminal table has a row per path; the lab is back on its backend', async () => {
      for (const row of [
        'node → node (native)',
        'pod → pod, same node',
        'pod → pod, vxlan',
        'pod → pod, host-gw',
      ])
        assert.match(
          r.stdout,
          new RegExp(`^${row.replace(/[()]/g, '\\$&')}\\s+\\d+\\.\\d+\\s+\\d\\.\\d\\d`, 'm'),
          row,
        );
      assert.equal((await readState(state.name)).backend, 'vxlan');
    });

    await t.test(
      'report.html renders offline in headless Chromium with its four charts visible',
      async () => {
        const { page, fetched, close } = await openOffline(join(out, 'report.html'));
        try {
          const charts = await page.locator('svg.chart').all();
          assert.equal(charts.length, 4);
          for (const c of charts) {
            const id = await c.getAttribute('data-chart');
            await c.scrollIntoViewIfNeeded();
            assert.ok(await c.isVisible(), `${id} visible`);
            const box = await c.boundingBox();
            assert.ok(box && box.width > 400 && box.height > 100, `${id} has a size`);
            const bars = await c.locator('rect.bar').all();
            assert.ok(bars.length >= res.paths.length, `${id}: a bar per path`);
            for (const b of bars) assert.ok(((await b.boundingBox())?.width ?? 0) > 0, `${id}: bars drawn`);
          }
          assert.deepEqual(fetched, [], 'nothing fetched from the network');
          await page.screenshot({ path: join(out, 'report.png'), fullPage: true });
        } finally {
          await close();
        }
      },
    );

    await t.test('--compare prints the change between two runs; bad files give one line', async () => {
      const f = join(out, 'result.json');
      const c = await weft(['bench', '--compare', f, f]);
      assert.equal(c.code, 0, c.stderr);
      assert.match(c.stdout, /pod → pod, vxlan\s+Gbit\/s, 1 stream\s+\d+\.\d+\s+\d+\.\d+\s+\+0\.0%/);

      await writeFile(join(out, 'bad.json'), JSON.stringify({ ...res, paths: [{ id: 'x' }] }));
      for (const [file, re] of [
        [join(out, 'nope.json'), /^weft: cannot read .*nope\.json: ENOENT$/],
        [
          join(out, 'bad.json'),
          /^weft: .*bad\.json: invalid result: \/paths\/0: must have required property/,
        ],
      ] as const) {
        const b = await weft(['bench', '--compare', f, file]);
        assert.notEqual(b.code, 0);
        assert.equal(b.stderr.trim().split('\n').length, 1, b.stderr);
        assert.match(b.stderr.trim(), re);
      }
    });

    await t.test(
      '--fast-path: +bpf rows beside the plain ones (none for udp, whose peers it leaves to the stack); the lab is restored',
      async () => {
        const fp = join(out, 'fp');
        const f = await weft([
          'bench',
          '--name',
          state.name,
          '--quick',
          '--fast-path',
          '--backends',
          'host-gw,udp',
          '--out',
          fp,
        ]);
        assert.equal(f.code, 0, f.stderr);
        const fr = JSON.parse(await readFile(join(fp, 'result.json'), 'utf8')) as BenchResult;
        assert.deepEqual(schemaErrors(fr), []);
        assert.deepEqual(fr.paths.map((p) => p.id).sort(), [
          'cross-node/host-gw',
          'cross-node/host-gw+bpf',
          'cross-node/udp',
          'native',
          'same-node',
          'same-node+bpf',
        ]);
        for (const p of fr.paths) assert.equal(p.status, 'ok', `${p.id}: ${p.reason ?? ''}`);
        assert.match(f.stdout, /^pod → pod, host-gw\+bpf\s+\d+\.\d+/m);
        const after = await readState(state.name);
        assert.equal(after.backend, 'vxlan');
        assert.equal(after.spec.fastPath ?? 'none', 'none', 'the fast path is off again');
      },
    );

    await t.test('bad input: an unknown lab or backend is one line naming it', async () => {
      const a = await weft(['bench', '--name', 'nolabhere', '--quick']);
      assert.notEqual(a.code, 0);
      assert.match(a.stderr.trim(), /^weft: no lab named "nolabhere" is up/);
      const b = await weft(['bench', '--name', state.name, '--backends', 'vxlan,udpx']);
      assert.match(b.stderr.trim(), /^weft: --backends: unknown backend "udpx"/);
      const c = await weft(['bench', '--name', state.name, '--backends', 'neutron']);
      assert.match(c.stderr.trim(), /^weft: backend neutron needs a lab on the neutron underlay/);
    });
  },
);
