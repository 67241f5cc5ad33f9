import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { demoSchemaErrors, type DemoResult } from '../../src/demo/result.js';
import { listNetns } from '../../src/lab/netns.js';
import { run } from '../../src/util/exec.js';
import { uniqueName } from '../helpers/lab.js';
import { checkReportRenders } from './report.js';

const WEFT = fileURLToPath(new URL('../../src/cli/weft.js', import.meta.url));
const weft = (args: string[]) =>
  run(process.execPath, [WEFT, ...args], { allowFailure: true, timeoutMs: 900_000 });

/**
 * The quick path: `weft demo --underlay flat` (no Neutron) provisions the Magnum template on a flat
 * lab, measures what a flat lab has, shows the two limits that need no Neutron, and says which parts
 * need Neutron. 1 s per measurement: it checks what the run produces, never how fast.
 */
test(
  'weft demo --underlay flat: the quick run passes and writes a valid result and a report',
  { timeout: 900_000 },
  async (t) => {
    const out = await mkdtemp(join(tmpdir(), 'weft-demo-'));
    t.after(() => rm(out, { recursive: true, force: true }));
    const name = uniqueName('df');
    const r = await weft(['demo', '--underlay', 'flat', '--name', name, '--out', out, '--seconds', '1']);
    t.after(() => weft(['lab', 'down', '--name', name]));
    // On failure: every line that says what failed, then the end of the run.
    const failures = r.stdout.split('\n').filter((l) => /failed|error/i.test(l));
    assert.equal(r.code, 0, `${failures.join('\n')}\n…\n${r.stdout.slice(-2000)}${r.stderr}`);
    const res = JSON.parse(await readFile(join(out, 'result.json'), 'utf8')) as DemoResult;

    await t.test('result.json is valid weft-demo/v1; the steps say what ran', () => {
      assert.deepEqual(demoSchemaErrors(res), []);
      assert.equal(res.ok, true);
      assert.deepEqual(
        res.steps.map((s) => s.id),
        ['provision', 'trace', 'quantify', 'limits', 'mitigate'],
      );
      assert.equal(res.steps.find((s) => s.id === 'mitigate')!.status, 'not-applicable');
      assert.equal(res.provision!.podPairs.answered, res.provision!.podPairs.total);
      assert.ok(
        res.provision!.mapping.some(
          (m) => m.field === 'labels.flannel_backend' && m.became === 'backend: vxlan',
        ),
      );
    });

    await t.test('the table: measured rows with ratios, Neutron-only rows not applicable', () => {
      const row = (id: string) => res.quantify!.rows.find((x) => x.id === id)!;
      for (const id of ['native', 'vxlan', 'host-gw', 'udp', 'udp-batch1']) {
        assert.equal(row(id).status, 'measured', `${id}: ${row(id).reason ?? ''}`);
        assert.equal(typeof row(id).ratio, 'number');
      }
      assert.equal(row('native').ratio, 1);
      assert.equal(row('vxlan').mtu, 1450);
      for (const id of ['host-gw+pairs', 'neutron']) assert.equal(row(id).status, 'not-applicable');
      assert.equal(row('vxlan').talk!.gbps, 1.71);
      assert.equal(row('udp').mtu, 1472, "udp's 28 bytes of overhead");
      assert.deepEqual([row('udp').talk!.gbps, row('udp-batch1').talk!.gbps], [0.385, 0.385]);
    });

    await t.test(
      'the trace: pod → service VIP → pod over vxlan, the DNAT hop, weft’s VXLAN both ways',
      () => {
        const tr = res.traces[0]!;
        assert.equal(tr.status, 'traced', tr.reason);
        assert.equal(tr.backend, 'vxlan');
        assert.equal(tr.verdict, 'delivered');
        assert.ok(tr.checks!.length >= 4 && tr.checks!.every((c) => c.ok), JSON.stringify(tr.checks));
        const dnat = tr.hops!.find((h) => h.nat?.startsWith('DNAT'))!;
        assert.match(
          dnat.nat!,
          new RegExp(`^DNAT ${tr.service!.vip.replace(/\./g, '\\.')}:80 → 10\\.100\\.\\d+\\.\\d+:8080`),
        );
        for (const dir of ['request', 'reply'])
          assert.ok(
            tr.hops!.some(
              (h) => h.direction === dir && h.owners.join() === 'weft' && /^VXLAN VNI 1 /.test(h.layers[0]!),
            ),
            `${dir}: weft's VXLAN`,
          );
        assert.ok(tr.hops!.every((h) => h.tUs >= 0 && h.dtUs >= 0));
        assert.equal(res.traces[1]!.status, 'not-applicable');
      },
    );

    await t.test('limits without Neutron: the MTU and the external host, with evidence', () => {
      const lim = (id: string) => res.limits.find((l) => l.id === id)!;
      assert.equal(lim('mtu').status, 'shown', lim('mtu').finding);
      assert.match(
        lim('mtu').finding,
        /a 1450-byte packet with Don't Fragment \(ping -s 1422\) passes, a 1451-byte one \(ping -s 1423\) fails/,
      );
      assert.equal(lim('external').status, 'shown', lim('external').finding);
      for (const id of ['mtu', 'external']) assert.ok(lim(id).evidence.length >= 2);
      for (const id of ['port-security', 'cross-subnet']) assert.equal(lim(id).status, 'not-applicable');
    });

    await t.test('the text says it as it goes; the lab is gone', async () => {
      assert.match(r.stdout, /^== 1\. Provision a cluster from a Magnum template$/m);
      assert.match(r.stdout, /labels\.flannel_backend=vxlan\s+-> backend: vxlan/);
      assert.match(
        r.stdout,
        /^\s+VM to VM \(node → node, native\)\s+\d+\.\d\d\s+1\.00\s+1500\s+7\.74\s+1\.00$/m,
      );
      assert.match(r.stdout, /\[\s*\d+ s\] \[\d+\/\d+\] native, repetition 1\/1: TCP 1 stream/);
      assert.match(r.stdout, /^== demo passed in/m);
      assert.match(
        r.stdout,
        /^\s+→\s+\+\d+ µs\s+\(\+\d+\) n1\/\S+\s+\S+ .*DNAT 10\.9\d\.\d+\.\d+:80 → /m,
        'the DNAT hop, with its times',
      );
      assert.doesNotMatch(r.stdout, /pending/);
      assert.ok(!(await listNetns()).some((n) => n.startsWith(`wl-${name}-`)));
    });

    await t.test('report.html renders offline in headless Chromium', async () => {
      const { text } = await checkReportRenders(out, { charts: 2, limits: 4, rows: 7, traces: ['before'] });
      assert.match(text, /the DNAT hop/);
      assert.doesNotMatch(text, /pending/);
    });
  },
);

test('weft demo: bad input is one line naming it', async () => {
  const a = await weft(['demo', '--underlay', 'routed']);
  assert.notEqual(a.code, 0);
  assert.equal(
    a.stderr.trim(),
    'weft: --underlay: "routed" is not neutron or flat (weft demo (real Neutron) or weft demo --underlay flat (quick, no Neutron))',
  );
  const b = await weft(['demo', '--underlay', 'flat', '--seconds', '0']);
  assert.match(b.stderr.trim(), /^weft: --seconds: "0" is not an integer from 1 to 600$/);
});
