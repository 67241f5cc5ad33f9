import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { labStatus, labSwitchBackend, type NodeState } from '../../src/lab/lab.js';
import { labServe } from '../../src/lab/serve.js';
import { serviceAdd } from '../../src/lab/services.js';
import { labTrace } from '../../src/trace/run.js';
import type { TraceResult } from '../../src/trace/types.js';
import { run } from '../../src/util/exec.js';
import { inNs, upLab } from '../helpers/lab.js';
import {
  assertNothingLeft,
  assertOrdered,
  assertTraceClean,
  assertTunnelled,
  hopsIn,
  journey,
} from './helpers.js';

const WEFT = fileURLToPath(new URL('../../src/cli/weft.js', import.meta.url));

/**
 * weft trace on a 2-node flat lab (pods n1p1, n1p2 on n1; n2p1, n2p2 on n2): pod to pod on one node,
 * across nodes over vxlan and host-gw in both directions, a service VIP over TCP with two endpoints,
 * a deny rule, bad input, and a tracer killed with SIGKILL. After every trace nothing is left.
 */
test(
  'weft trace: hop by hop through a flat lab (vxlan, host-gw, a service, a deny rule)',
  { timeout: 420_000 },
  async (t) => {
    const { state, down } = await upLab({ nodes: 2, podsPerNode: 2, underlay: 'flat', backend: 'vxlan' });
    t.after(down);
    const pod = (n: string) => state.pods.find((p) => p.name === n)!;
    const node = (n: string) => state.nodes.find((x) => x.name === n)!;
    const delivered = (tr: TraceResult) =>
      assert.equal(
        tr.summary.verdict,
        'delivered',
        `${tr.summary.why}\nrequest: ${journey(tr, 'request')}\nreply: ${journey(tr, 'reply')}`,
      );

    await t.test('same node: n1p1 → n1p2, every hop in order with times, no encapsulation', async () => {
      const tr = await labTrace(state.name, 'n1p1', 'n1p2');
      delivered(tr);
      assertOrdered(tr.hops);
      const first = tr.hops[0]!;
      assert.deepEqual(
        [first.netns, first.device, first.hook, first.event],
        [pod('n1p1').netns, 'eth0', 'egress', 'sent'],
      );
      const req = hopsIn(tr, 'request');
      assert.equal(req[req.length - 1]!.netns, pod('n1p2').netns);
      assert.equal(req[req.length - 1]!.event, 'delivered');
      const last = tr.hops[tr.hops.length - 1]!;
      assert.deepEqual([last.direction, last.netns, last.event], ['reply', pod('n1p1').netns, 'delivered']);
      assert.ok(
        tr.hops.every((h) => h.outer.length === 0 && h.host === 'n1'),
        journey(tr, 'request'),
      );
      // bridged from one host veth to the other: in at the sender's, out at the receiver's, both ways
      const inNode = tr.hops
        .filter((h) => h.netns === node('n1').netns)
        .map((h) => `${h.direction} ${h.deviceKind} ${h.hook}`);
      assert.deepEqual(inNode, [
        'request veth ingress',
        'request veth egress',
        'reply veth ingress',
        'reply veth egress',
      ]);
      assert.ok(tr.summary.rttNs! > 0 && tr.summary.rttNs === last.tNs);
      assert.equal(tr.summary.dataPath[0]?.path, 'local (the node bridge)');
      await assertTraceClean(state, tr);
    });

    for (const [a, b] of [
      ['n1p1', 'n2p1'],
      ['n2p1', 'n1p1'],
    ] as const) {
      await t.test(
        `vxlan: ${a} → ${b}, outer UDP 8472 VNI 1 between the nodes' underlay addresses`,
        async () => {
          const tr = await labTrace(state.name, a, b);
          delivered(tr);
          assertOrdered(tr.hops);
          const ends = [node(pod(a).node), node(pod(b).node)] as const;
          const vxlan = (src: NodeState, dst: NodeState) =>
            ({
              src: src.publicIP,
              dst: dst.publicIP,
              udpPort: 8472,
              kind: 'vxlan',
              vni: 1,
              owner: 'weft',
            }) as const;
          for (const { dst, hops, iEnc } of assertTunnelled(tr, state, [...ends], vxlan)) {
            assert.ok(
              hops.some((h) => h.event === 'decapsulated' && h.netns === dst.netns && h.outer.length === 0),
            );
            const iDec = hops.findIndex((h) => h.event === 'decapsulated');
            assert.ok(iEnc < iDec, 'encapsulated before decapsulated');
          }
          assert.deepEqual(
            tr.summary.dataPath.map((d) => d.path),
            ['vxlan', 'vxlan'],
          );
          assert.ok(tr.summary.segments.some((s) => s.segment === 'underlay'));
          assert.equal(tr.summary.pathMtu, 1450);
          await assertTraceClean(state, tr);
        },
      );
    }

    await t.test(
      'pod → service VIP over TCP: the DNAT hop names the endpoint, the reply is un-NATed; both endpoints',
      async () => {
        await labServe(state, 'n1p2', { port: 8080, proto: 'both' });
        await labServe(state, 'n2p1', { port: 8080, proto: 'both' });
        const svc = await serviceAdd(state, {
          name: 'web',
          port: 80,
          targetPort: 8080,
          to: ['n1p2', 'n2p1'],
        });
        assert.match(svc.vip, /^10\.(9[6-9]|10[0-9]|11[01])\./, 'a ClusterIP from 10.96.0.0/12');
        const st = await labStatus(state.name);
        assert.deepEqual(
          st.services.map((s) => [s.name, s.vip, s.port, s.proto, s.endpoints]),
          [['web', svc.vip, 80, 'tcp', ['n1p2', 'n2p1']]],
        );
        const reached = new Set<string>();
        for (let i = 0; i < 16 && reached.size < 2; i++) {
          const tr = await labTrace(state.name, 'n1p1', 'web');
          delivered(tr);
          assertOrdered(tr.hops);
          const dnat = tr.hops.find((h) => h.nat?.kind === 'DNAT');
          assert.ok(dnat, `a DNAT hop: ${journey(tr, 'request')}`);
          assert.equal(dnat.direction, 'request');
          assert.equal(dnat.netns, node('n1').netns, 'DNAT on the sending pod’s node');
          assert.equal(dnat.nat!.from, `${svc.vip}:80`);
          const ep = dnat.nat!.endpoint!;
          assert.ok(['n1p2', 'n2p1'].includes(ep), `endpoint ${ep}`);
          assert.equal(dnat.nat!.to, `${pod(ep).ip}:8080`);
          const rules = tr.hops.flatMap((h) => h.netfilter ?? []);
          assert.ok(
            rules.some((r) => r.table === 'ip weft-svc' && r.rule.includes(`dnat to ${pod(ep).ip}:8080`)),
            `the dnat rule that chose it: ${JSON.stringify(rules)} ${tr.warnings.join('; ')}`,
          );
          assert.ok(
            rules.some((r) => r.rule.includes('numgen random')),
            'the random choice among endpoints',
          );
          const unnat = tr.hops.find((h) => h.nat?.kind === 'un-DNAT');
          assert.ok(unnat && unnat.direction === 'reply', `the reply is un-NATed: ${journey(tr, 'reply')}`);
          assert.deepEqual([unnat.nat!.from, unnat.nat!.to], [`${pod(ep).ip}:8080`, `${svc.vip}:80`]);
          const last = tr.hops[tr.hops.length - 1]!;
          assert.deepEqual(
            [last.event, last.inner.src, last.inner.sport, last.inner.tcpFlags],
            ['delivered', svc.vip, 80, 'SYN|ACK'],
          );
          reached.add(ep);
          await assertTraceClean(state, tr);
        }
        assert.deepEqual([...reached].sort(), ['n1p2', 'n2p1'], 'repeated traces reached both endpoints');
      },
    );

    await t.test(
      'a deny rule in a node: the trace names the hop, the kernel reason and the rule',
      async () => {
        const rules = `table ip wtdeny {\n chain deny {\n  type filter hook forward priority 0; policy accept;\n  ip daddr ${pod('n2p2').ip} drop\n }\n}\n`;
        await inNs(node('n2').netns, ['nft', '-f', '-'], { input: rules, allowFailure: false });
        try {
          const tr = await labTrace(state.name, 'n1p1', 'n2p2');
          assert.equal(tr.summary.verdict, 'dropped', tr.summary.why);
          const drop = tr.hops.find((h) => h.event === 'dropped')!;
          assert.equal(drop.netns, node('n2').netns);
          assert.equal(drop.host, 'n2');
          assert.equal(drop.drop!.reason, 'NETFILTER_DROP');
          assert.ok(
            drop.netfilter?.some(
              (v) => v.table === 'ip wtdeny' && v.verdict === 'drop' && v.rule.includes(pod('n2p2').ip),
            ),
          );
          assert.match(tr.summary.why, /NETFILTER_DROP.*wtdeny/);
          assert.equal(hopsIn(tr, 'reply').length, 0);
          await assertTraceClean(state, tr);
        } finally {
          await inNs(node('n2').netns, ['nft', 'delete', 'table', 'ip', 'wtdeny']);
        }
      },
    );

    await t.test('host-gw: no outer header, both directions delivered, every hop in order', async () => {
      await labSwitchBackend(state.name, 'host-gw');
      for (const [a, b] of [
        ['n1p1', 'n2p2'],
        ['n2p2', 'n1p1'],
      ] as const) {
        const tr = await labTrace(state.name, a, b);
        delivered(tr);
        assertOrdered(tr.hops);
        assert.ok(
          tr.hops.every((h) => h.outer.length === 0),
          'nothing is encapsulated',
        );
        assert.ok(!tr.hops.some((h) => h.device === 'weft.1'), 'the VXLAN device is not on the path');
        for (const dir of ['request', 'reply'] as const)
          assert.ok(
            hopsIn(tr, dir).some((h) => h.netns === state.switchNetns),
            `${dir} crosses the underlay switch`,
          );
        assert.deepEqual(
          tr.summary.dataPath.map((d) => d.path),
          ['direct', 'direct'],
        );
        assert.equal(tr.summary.pathMtu, 1500);
        await assertTraceClean(state, tr);
      }
    });

    await t.test('bad input: one clear line each', async () => {
      await serviceAdd(state, { name: 'empty', port: 81, to: [] });
      const cases: [string[], RegExp][] = [
        [['nosuch', 'n1p1'], /no pod or node "nosuch"/],
        [['n1p1', 'nosuch'], /no pod, node or service "nosuch"/],
        [['n1p1', 'empty'], /service empty .* has no endpoints/],
        [['n1p1', '10.244.250.9'], /10\.244\.250\.9 is unreachable/],
        [['n1p1', 'n2p1', '--proto', 'icmp', '--port', '80'], /--port makes no sense with an ICMP probe/],
      ];
      for (const [args, re] of cases) {
        const r = await run(process.execPath, [WEFT, 'trace', '--name', state.name, ...args], {
          allowFailure: true,
        });
        assert.equal(r.code, 1, `${args.join(' ')}: exit 1`);
        const lines = r.stderr.trim().split('\n');
        assert.equal(lines.length, 1, `one line: ${r.stderr}`);
        assert.match(lines[0]!, /^weft: /);
        assert.match(lines[0]!, re);
      }
    });

    await t.test(
      'weft trace-node, the node-local half: JSON lines of what this host saw, then nothing left',
      async () => {
        const [a, b] = [pod('n1p1'), pod('n2p1')];
        const watch = [a.netns, node('n1').netns, state.switchNetns, node('n2').netns, b.netns];
        const r = await run(process.execPath, [
          WEFT,
          'trace-node',
          '--netns',
          watch.join(','),
          '--nft',
          node('n2').netns,
          '--proto',
          'icmp',
          '--dst',
          b.ip,
          '--send-from',
          a.netns,
          '--duration',
          '1500',
        ]);
        const events = r.stdout
          .trim()
          .split('\n')
          .map(
            (l) =>
              JSON.parse(l) as {
                ev: string;
                dir?: string;
                outcome?: string;
                pid?: number;
                progIds?: number[];
              },
          );
        assert.equal(events[0]!.ev, 'probe', 'first the probe, for the other hosts to watch for');
        assert.equal(events.filter((e) => e.ev === 'watching').length, watch.length);
        assert.ok(events.some((e) => e.ev === 'hop' && e.dir === 'request'));
        assert.ok(events.some((e) => e.ev === 'hop' && e.dir === 'reply'));
        assert.equal(events.find((e) => e.ev === 'outcome')?.outcome, 'reply');
        const ready = events.find((e) => e.ev === 'ready')!;
        await assertNothingLeft(state, ready.progIds!, ready.pid!);
      },
    );

    await t.test(
      'a tracer killed with SIGKILL mid-trace leaves no program, link, trace table or capture',
      async () => {
        const child = spawn(
          process.execPath,
          [WEFT, 'trace', '--name', state.name, 'n1p1', 'n2p1', '--timeout', '5000'],
          {
            env: { ...process.env, WEFT_TRACE_DEBUG: '1' },
            stdio: ['ignore', 'ignore', 'pipe'],
          },
        );
        let err = '';
        child.stderr.on('data', (b: Buffer) => (err += b.toString()));
        const deadline = Date.now() + 20_000;
        while (!/"ev":"watching"/.test(err) && Date.now() < deadline)
          await new Promise((r) => setTimeout(r, 20));
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGKILL');
        await exited;
        const ready = /\{"ev":"ready".*\}/.exec(err);
        assert.ok(ready, `the loader had started: ${err.slice(0, 400)}`);
        const r = JSON.parse(ready[0]) as { pid: number; progIds: number[] };
        await assertNothingLeft(state, r.progIds, r.pid);
      },
    );
  },
);
