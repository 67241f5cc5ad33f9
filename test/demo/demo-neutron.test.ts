// weft-test: exclusive neutron-dataplane (its hypervisor namespaces exist once per machine)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { demoSchemaErrors, type DemoResult } from '../../src/demo/result.js';
import { listNetns } from '../../src/lab/netns.js';
import { NEUTRON_EXTERNAL_IP, neutronInUse } from '../../src/lab/neutron-underlay.js';
import { run } from '../../src/util/exec.js';
import { uniqueName } from '../helpers/lab.js';
import { inNeutronTurn } from '../neutron/fixture-turn.js';
import { checkReportRenders } from './report.js';

const WEFT = fileURLToPath(new URL('../../src/cli/weft.js', import.meta.url));
const weft = (args: string[]) =>
  run(process.execPath, [WEFT, ...args], { allowFailure: true, timeoutMs: 1_500_000 });

/**
 * The talk end to end on real Neutron, through the CLI as a user runs it (1 s per measurement, one
 * repetition: it checks what the run produces, never how fast). Every step must pass.
 */
test(
  'weft demo --underlay neutron: the talk end to end, a report with every row, the limits and the mitigation',
  { timeout: 2_400_000 },
  async (t) => {
    const out = await mkdtemp(join(tmpdir(), 'weft-demo-'));
    t.after(() => rm(out, { recursive: true, force: true }));
    const name = uniqueName('dn');
    t.after(() => weft(['lab', 'down', '--name', name]));
    const r = await inNeutronTurn(async () => {
      const x = await weft(['demo', '--underlay', 'neutron', '--name', name, '--out', out, '--seconds', '1']);
      if (x.code !== 0 && /already running/.test(x.stdout))
        throw new Error('the Neutron fixture is already running');
      return x;
    });
    assert.equal(r.code, 0, r.stdout.slice(-4000) + r.stderr);
    const res = JSON.parse(await readFile(join(out, 'result.json'), 'utf8')) as DemoResult;
    const row = (id: string) => res.quantify!.rows.find((x) => x.id === id)!;
    const lim = (id: string) => res.limits.find((l) => l.id === id)!;

    await t.test('result.json is valid; every step passed', () => {
      assert.deepEqual(demoSchemaErrors(res), []);
      assert.equal(res.ok, true);
      assert.deepEqual(
        res.steps.map((s) => [s.id, s.status]),
        ['provision', 'trace', 'quantify', 'limits', 'mitigate'].map((id) => [id, 'passed']),
      );
      assert.doesNotMatch(r.stdout, /pending/i);
    });

    await t.test(
      'the trace over vxlan: pod → service VIP → pod on the other hypervisor, the DNAT hop, both encapsulations both ways',
      () => {
        const tr = res.traces[0]!;
        assert.equal(tr.status, 'traced', tr.reason);
        assert.equal(tr.backend, 'vxlan');
        assert.ok(
          tr.checks!.every((c) => c.ok),
          JSON.stringify(tr.checks),
        );
        const dnat = tr.hops!.find((h) => h.nat?.startsWith('DNAT'))!;
        assert.equal(dnat.direction, 'request');
        assert.equal(dnat.host, 'n1', 'DNAT on the sender’s node');
        for (const dir of ['request', 'reply']) {
          const both = tr.hops!.filter((h) => h.direction === dir && h.layers.length === 2);
          assert.ok(both.length > 0, `${dir}: two encapsulations`);
          assert.deepEqual(both[0]!.owners, ['neutron', 'weft'], "Neutron's outside, weft's inside");
          assert.ok(
            both.every((h) => /^nhost\d$|fabric|underlay/.test(h.host) || h.netns.startsWith('nhost')),
          );
        }
        assert.ok(new Set(tr.hops!.map((h) => h.host)).size >= 3, 'across the hypervisors');
        assert.equal(tr.pathMtu, 1400);
        assert.ok(tr.hops!.every((h) => h.dtUs >= 0));
      },
    );

    await t.test('the trace after the switch: no encapsulation of weft’s, MTU 1450', () => {
      const tr = res.traces[1]!;
      assert.equal(tr.status, 'traced', tr.reason);
      assert.equal(tr.backend, 'neutron');
      assert.ok(
        tr.checks!.every((c) => c.ok),
        JSON.stringify(tr.checks),
      );
      assert.ok(tr.hops!.every((h) => !h.owners.includes('weft')));
      assert.ok(tr.hops!.some((h) => h.nat?.startsWith('DNAT')));
      assert.equal(tr.pathMtu, 1450);
    });

    await t.test(
      'provisioned from the Magnum template across both hypervisors; every pod pair answered at once',
      () => {
        const p = res.provision!;
        assert.equal(p.underlay, 'neutron');
        assert.deepEqual([...new Set(p.nodes.map((n) => n.hypervisor))].sort(), ['nhost1', 'nhost2']);
        assert.deepEqual([...new Set(p.nodes.map((n) => n.underlaySubnet))].sort(), [
          '10.0.1.0/24',
          '10.0.2.0/24',
        ]);
        assert.ok(
          p.nodes.every((n) => n.podSubnet.startsWith('10.100.')),
          'flannel_network_cidr honoured',
        );
        assert.equal(p.podPairs.answered, p.podPairs.total);
      },
    );

    await t.test(
      "the table: every row of the talk's with a measured ratio, plain host-gw dropped by name",
      () => {
        for (const id of ['native', 'host-gw+pairs', 'vxlan', 'udp', 'udp-batch1', 'neutron']) {
          assert.equal(row(id).status, 'measured', `${id}: ${row(id).reason ?? ''}`);
          assert.ok(typeof row(id).ratio === 'number' && row(id).ratio! > 0, `${id} has a ratio`);
        }
        assert.equal(row('host-gw').status, 'unreachable');
        assert.match(
          row('host-gw').reason!,
          /^dropped: .*Neutron's port security drops it: port \S+ of n1 \(10\.0\.1\.11\) has port_security_enabled and no allowed address pair covering 10\.100\./,
        );
        assert.equal(row('vxlan').mtu, 1400);
        assert.equal(row('neutron').mtu, 1450);
        assert.equal(row('host-gw+pairs').mtu, 1450);
        assert.equal(row('udp').mtu, 1422);
        assert.deepEqual(
          ['native', 'host-gw+pairs', 'vxlan', 'udp', 'udp-batch1'].map((id) => row(id).talk!.gbps),
          [7.74, 6.0, 1.71, 0.385, 0.385],
        );
      },
    );

    await t.test('the four limits, each shown with its evidence', () => {
      for (const id of ['mtu', 'external', 'port-security', 'cross-subnet']) {
        assert.equal(lim(id).status, 'shown', `${id}: ${lim(id).finding}`);
        assert.ok(lim(id).evidence.length >= 2, `${id}: evidence`);
      }
      assert.match(
        lim('mtu').finding,
        /^pod MTU 1400 = the VM's 1450 .*a 1400-byte packet with Don't Fragment \(ping -s 1372\) passes, a 1401-byte one \(ping -s 1373\) fails: "message too long, mtu=1400"/,
      );
      const port = lim('port-security').evidence.find((e) => e.kind === 'neutron-api')!;
      assert.match(port.output, /port_security_enabled: true\nallowed_address_pairs: \[\]/);
      assert.match(lim('port-security').evidence.find((e) => e.kind === 'counter')!.output, /^\d+ → \d+$/);
      // The tracer names the drop: the hypervisor, the kernel's reason, Neutron's anti-spoofing chain.
      assert.match(
        lim('port-security').evidence.find((e) => e.kind === 'trace')!.output,
        /^request dropped in nhost1 \(nhost1\) at \S+: NETFILTER_DROP .* in ip filter neutron-linuxbri-s\S+: Neutron port security \(anti-spoofing\)/,
      );
      assert.match(
        lim('cross-subnet').finding,
        /refused: peer \S+ at 10\.0\.2\.12 is not on-link on eth0 \(10\.0\.1\.0\/24\): host-gw needs every node on one L2 segment/,
      );
      assert.match(lim('external').finding, /does not reach pod n2p1/);
    });

    await t.test(
      'mitigation: pods kept, MTU 1450, the external host reaches a pod unmasked, what weft asked of Neutron',
      () => {
        const m = res.mitigation!;
        assert.equal(m.podsKept, true);
        assert.equal(m.podPairs.answered, m.podPairs.total);
        assert.deepEqual(m.mtu, { before: 1400, after: 1450 });
        assert.deepEqual(m.df, { passes: 1450, passed: true, fails: 1451, failed: true });
        assert.equal(m.external.reached, true);
        assert.equal(m.external.seenSource, NEUTRON_EXTERNAL_IP);
        assert.equal(m.asked!.ports.length, 3);
        for (const p of m.asked!.ports) {
          assert.equal(p.portSecurity, true, 'port security stays on');
          assert.equal(p.pairs.length, 1, `${p.node}: one pair, its pod subnet`);
        }
        assert.equal(m.asked!.routes.length, 3, 'a router route per node');
        assert.ok(typeof m.throughput.neutronGbps === 'number' && typeof m.throughput.vxlanGbps === 'number');
      },
    );

    await t.test('the claims map to what was measured; the lab and the fixture are gone', async () => {
      assert.equal(res.claims.length, 7);
      for (const id of ['port-security', 'same-l2', 'mtu', 'outside'])
        assert.equal(res.claims.find((c) => c.id === id)!.verdict, 'confirmed', id);
      assert.ok(!(await listNetns()).some((n) => n.startsWith(`wl-${name}-`)));
      assert.equal(await neutronInUse(), false);
    });

    await t.test('report.html renders offline in headless Chromium', async () => {
      const { text } = await checkReportRenders(out, {
        charts: 2,
        limits: 4,
        rows: 7,
        traces: ['before', 'after'],
      });
      assert.match(text, /What weft asked of Neutron/);
      assert.match(text, /port_security_enabled: true/);
    });
  },
);
