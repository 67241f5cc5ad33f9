import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { invokeCni } from '../../src/cni/invoke.js';
import {
  CNI_PLUGIN,
  EXTERNAL_IP,
  cniConfig,
  labRestartAgent,
  labSwitchBackend,
  readState,
  type NodeState,
} from '../../src/lab/lab.js';
import { cmdline } from '../../src/lab/netns.js';
import { run } from '../../src/util/exec.js';
import { allPairsFailures, eventually, inNs, pings, seenSource, tcpTransfer, upLab } from '../helpers/lab.js';
import { serviceAdd, serviceDel } from '../../src/lab/services.js';
import { labTrace } from '../../src/trace/run.js';
import { assertOrdered, assertTraceClean, hopsIn, journey } from '../trace/helpers.js';
import { kernelCounters, loaderStatus, metricPackets, pingRun, survivingBpfObjects } from './helpers.js';

const WEFT = fileURLToPath(new URL('../../src/cli/weft.js', import.meta.url));
const MiB = 1024 * 1024;

/**
 * The BPF fast path on a 3-node flat lab: vxlan, then host-gw, with the program on every pod veth and
 * node device. Pod-to-pod packets take it (its counters say so); everything else — the external host
 * (masquerade), a service VIP (DNAT, un-DNAT of the replies) — still works through the normal stack.
 */
test(
  'BPF fast path on a flat lab: reachability, integrity, NAT, counters, crash, removal',
  { timeout: 300_000 },
  async (t) => {
    const { state, down } = await upLab({
      nodes: 3,
      podsPerNode: 2,
      underlay: 'flat',
      backend: 'vxlan',
      fastPath: 'bpf',
    });
    t.after(down);
    const name = state.name;
    const node = (n: string) => state.nodes.find((x) => x.name === n)!;
    const pods = (n: string) => state.pods.filter((p) => p.node === n);
    const [n1, n2, n3] = [node('n1'), node('n2'), node('n3')];
    const [a1, a2] = pods('n1') as [(typeof state.pods)[0], (typeof state.pods)[0]];
    const b1 = pods('n2')[0]!;

    await t.test(
      'the program sits on every pod veth, the VXLAN device and the underlay of every node',
      async () => {
        for (const n of state.nodes) {
          const st = await loaderStatus(n);
          assert.equal(st.objects.filter((o) => !o.retired).length, 1, `${n.name}: one live object`);
          const devices = Object.keys(st.attached).sort();
          const want = [...pods(n.name).map((p) => p.hostVeth!), 'weft.1', 'eth0'].sort();
          assert.deepEqual(devices, want, `${n.name}: attached to its pods' veths, weft.1 and eth0`);
          assert.equal(st.pods, 2);
          assert.equal(st.peers, 2);
        }
      },
    );

    await t.test('weft-cni puts a new pod on the fast path at ADD and takes it off at DEL', async () => {
      const ns = `wl-${name}-n1px`;
      await run('ip', ['netns', 'add', ns]);
      // No agent while the plugin runs: its resync (pods-sync) cannot be what fills the map.
      await labRestartAgent(name, 'n1', { signal: 'SIGKILL', start: false });
      const cni = (command: 'ADD' | 'DEL') =>
        invokeCni({
          plugin: CNI_PLUGIN,
          command,
          containerId: `${name}-n1px`,
          netns: `/run/netns/${ns}`,
          ifname: 'eth0',
          config: cniConfig(n1),
          hostNetns: n1.netns,
        });
      try {
        const res = await cni('ADD');
        const ip = (res.ips as { address: string }[])[0]!.address.split('/')[0]!;
        const veth = (res.interfaces as { name: string; sandbox?: string }[]).find(
          (i) => !i.sandbox && i.name !== 'weft0',
        )!.name;
        const st = await loaderStatus(n1);
        assert.ok(st.attached[veth], `the program is on ${veth} as soon as ADD returns`);
        assert.equal(st.pods, 3, "the new pod's entry is in the map");
        const c0 = await kernelCounters(n1);
        assert.ok(await pings(a1.netns, ip, 2));
        assert.ok((await kernelCounters(n1)).fast_local! > c0.fast_local!, 'reached over the fast path');
        await cni('DEL');
        assert.equal((await loaderStatus(n1)).pods, 2, "DEL took the pod's entry out");
      } finally {
        await run('ip', ['netns', 'del', ns], { allowFailure: true });
        await labRestartAgent(name, 'n1', { signal: 'SIGTERM' });
      }
    });

    await t.test('vxlan: every pod reaches every pod, and those packets take the fast path', async () => {
      const before = await kernelCounters(n1);
      assert.deepEqual(await allPairsFailures(state), []);
      const after = await kernelCounters(n1);
      // Out: encapsulated by the program; in: decapsulated by it on the underlay.
      for (const k of ['fast_local', 'fast_vxlan', 'fast_decap'])
        assert.ok(after[k]! - before[k]! >= 2, `${k}: ${before[k]} → ${after[k]}`);
      assert.equal(after.slow_mtu, 0);
      assert.equal(after.slow_ttl, 0);
      // /metrics: the agent reads the kernel's counters every 5 s.
      assert.ok(
        await eventually(
          async () => (await metricPackets(n1, 'fast', 'vxlan_peer')) >= after.fast_vxlan!,
          12_000,
        ),
        'weft_fastpath_packets_total{path="fast",reason="vxlan_peer"} on /metrics',
      );
    });

    await t.test(
      'weft trace sees the packets the fast path redirects: hop by hop, same node and over VXLAN',
      async () => {
        const c0 = await kernelCounters(n1);
        for (const to of [a2, b1]) {
          const tr = await labTrace(name, a1.name, to.name);
          assert.equal(tr.summary.verdict, 'delivered', `${tr.summary.why}\n${journey(tr, 'request')}`);
          assertOrdered(tr.hops);
          const req = hopsIn(tr, 'request');
          // The tracer runs before the fast path on the host veth (it attaches first in the tcx chain):
          // the packet is seen arriving there, then in the next device, with no bridge in between.
          assert.deepEqual(
            req.filter((h) => h.netns === n1.netns).map((h) => `${h.deviceKind} ${h.hook}`)[0],
            'veth ingress',
            journey(tr, 'request'),
          );
          assert.ok(
            !tr.hops.some((h) => h.deviceKind === 'bridge'),
            `no hop on the bridge: ${journey(tr, 'request')}`,
          );
          const last = req[req.length - 1]!;
          assert.deepEqual([last.netns, last.event], [to.netns, 'delivered']);
          assert.match(tr.summary.dataPath[0]!.path, /BPF fast path/, JSON.stringify(tr.summary.dataPath));
          await assertTraceClean(state, tr);
        }
        const c1 = await kernelCounters(n1);
        assert.ok(c1.fast_local! > c0.fast_local! && c1.fast_vxlan! > c0.fast_vxlan!);
        // The fast path is untouched by the tracer coming and going.
        assert.equal((await loaderStatus(n1)).objects.length, 1);
      },
    );

    await t.test(
      'TTL as on the kernel path: bridged on a node, one hop per node routed, expiry answered',
      async () => {
        const ttlOf = async (ip: string) =>
          Number(/ttl=(\d+)/.exec((await inNs(a1.netns, ['ping', '-c', '1', '-W', '1', ip])).stdout)?.[1]);
        assert.equal(await ttlOf(a2.ip), 64, 'same node: bridged, not routed');
        assert.equal(await ttlOf(b1.ip), 62, 'across nodes: routed by both nodes');
        // TTL 1 leaving the pod: the node must answer "time exceeded", so the packet goes to the stack.
        const c0 = await kernelCounters(n1);
        const r = await inNs(a1.netns, ['ping', '-c', '1', '-W', '1', '-t', '1', b1.ip]);
        assert.match(r.stdout, /Time to live exceeded/);
        assert.ok((await kernelCounters(n1)).slow_ttl! > c0.slow_ttl!);
      },
    );

    await t.test(
      'vxlan: a 10 MiB transfer to another node and one on the same node arrive intact',
      async () => {
        const [before, far0] = [await kernelCounters(n1), await kernelCounters(n2)];
        assert.equal(await tcpTransfer(a1.netns, b1.netns, b1.ip, 10 * MiB), 10 * MiB);
        assert.equal(await tcpTransfer(a1.netns, a2.netns, a2.ip, 10 * MiB, 5203), 10 * MiB);
        const [after, far1] = [await kernelCounters(n1), await kernelCounters(n2)];
        // 10 MiB is at least 160 segments of 64 KiB (GSO): most of them took the fast path.
        assert.ok(after.fast_vxlan! - before.fast_vxlan! >= 160, 'the cross-node transfer was fast-pathed');
        assert.ok(after.fast_local! - before.fast_local! >= 160, 'the same-node transfer was fast-pathed');
        // On n2 the GSO packets of datagrams are weft.1's to decapsulate (the program cannot clear their
        // tunnel offload state), then the program delivers them; the single datagrams it decapsulates.
        assert.ok(far1.slow_vxlan_gso! - far0.slow_vxlan_gso! >= 100, 'GSO packets: weft.1 decapsulates');
        assert.ok(far1.fast_in! - far0.fast_in! >= 100, 'then delivered from weft.1 by the program');
        assert.ok(after.fast_decap! > before.fast_decap!, 'n1: the ACKs decapsulated by the program');
      },
    );

    await t.test(
      'a plain packet from the underlay whose source is no peer’s pod is left to the stack',
      async () => {
        // n2 sends unencapsulated pings to a1 from an address no lease holds, straight to n1's eth0:
        // what any neighbour on the underlay could do. The program must not hand them to the pod.
        const stranger = '10.99.0.1';
        const setup = [
          ['ip', 'addr', 'add', `${stranger}/32`, 'dev', 'eth0'],
          ['ip', 'route', 'add', `${a1.ip}/32`, 'via', n1.publicIP, 'dev', 'eth0', 'src', stranger],
        ];
        for (const c of setup) assert.equal((await inNs(n2.netns, c)).code, 0);
        try {
          const c0 = await kernelCounters(n1);
          await inNs(n2.netns, ['ping', '-c', '5', '-i', '0.2', '-W', '1', '-I', stranger, a1.ip]);
          const c1 = await kernelCounters(n1);
          assert.ok(c1.slow_other! - c0.slow_other! >= 5, `slow_other ${c0.slow_other} → ${c1.slow_other}`);
        } finally {
          await inNs(n2.netns, ['ip', 'route', 'del', `${a1.ip}/32`]);
          await inNs(n2.netns, ['ip', 'addr', 'del', `${stranger}/32`, 'dev', 'eth0']);
        }
        assert.deepEqual(await allPairsFailures(state), [], 'the peers’ pods are unaffected');
      },
    );

    await t.test('pod → the external host is masqueraded (the normal path)', async () => {
      const c0 = await kernelCounters(n1);
      assert.equal(await seenSource(a1.netns, state.external.netns, EXTERNAL_IP), n1.publicIP);
      const c1 = await kernelCounters(n1);
      assert.ok(c1.slow_unknown_destination! > c0.slow_unknown_destination!, 'it left the fast path');
    });

    await t.test(
      "lab services (kube-proxy's rules): pod → ClusterIP on another node and on the same node, replies un-NATed",
      async () => {
        // Backend on another node: DNAT on n1, the reply comes back over VXLAN and must be un-DNATed on n1.
        const far = await serviceAdd(state, { name: 'far', port: 5204, to: [b1.name] });
        const c0 = await kernelCounters(n1);
        assert.equal(await tcpTransfer(a1.netns, b1.netns, far.vip, MiB, 5204), MiB);
        const c1 = await kernelCounters(n1);
        assert.ok(
          c1.slow_nat! > c0.slow_nat!,
          `n1 left the NAT'd replies to the stack (slow_nat ${c0.slow_nat} → ${c1.slow_nat})`,
        );
        assert.ok(c1.slow_unknown_destination! > c0.slow_unknown_destination!, 'the VIP is not a pod');
        // Backend on the same node: the reply is bridged, and un-DNATed by bridge netfilter.
        const near = await serviceAdd(state, { name: 'near', port: 5205, to: [a2.name] });
        assert.equal(await tcpTransfer(a1.netns, a2.netns, near.vip, MiB, 5205), MiB);
        assert.ok((await kernelCounters(n1)).slow_nat! > c1.slow_nat!);
        // (A reply that kept the pod's address would reach a client expecting the VIP: no transfer.)
        await serviceDel(state, 'far');
        await serviceDel(state, 'near');
      },
    );

    await t.test(
      'lab services: a NodePort from the external host to a pod on another node and on its own node',
      async () => {
        const svc = await serviceAdd(state, { name: 'np', port: 5207, nodePort: 30207, to: [a1.name] });
        // n2's NodePort: DNAT and masquerade on n2, to a1 over VXLAN; a1's replies to n2 on the fast path.
        assert.equal(await tcpTransfer(state.external.netns, a1.netns, n2.publicIP, MiB, 30207, 5207), MiB);
        // n1's own NodePort: DNAT to its own pod.
        assert.equal(await tcpTransfer(state.external.netns, a1.netns, n1.publicIP, MiB, 30207, 5207), MiB);
        await serviceDel(state, svc.name);
      },
    );

    await t.test('agent SIGKILL (and restart) under a 20 ms ping: no packet lost', async () => {
      const program = async () => (await loaderStatus(n1)).objects.map((o) => o.program);
      const before = await program();
      const across = pingRun(a1.netns, b1.ip, 200, 20);
      const local = pingRun(a1.netns, a2.ip, 200, 20);
      await new Promise((r) => setTimeout(r, 1000));
      const pid = (await readState(name)).nodes.find((n) => n.name === 'n1')!.agentPid;
      // With no agent at all, the pings still take the fast path (not a fallback to the stack).
      await labRestartAgent(name, 'n1', { signal: 'SIGKILL', start: false });
      assert.equal(await cmdline(pid), undefined, 'the old agent is gone');
      const c0 = await kernelCounters(n1);
      await new Promise((r) => setTimeout(r, 500));
      const c1 = await kernelCounters(n1);
      assert.ok(c1.fast_vxlan! > c0.fast_vxlan! && c1.fast_local! > c0.fast_local!, 'fast path, no agent');
      await labRestartAgent(name, 'n1', { signal: 'SIGTERM' });
      const [[tx1, rx1], [tx2, rx2]] = await Promise.all([across, local]);
      assert.equal(rx1, tx1, `across nodes: ${tx1 - rx1} of ${tx1} lost`);
      assert.equal(rx2, tx2, `same node: ${tx2 - rx2} of ${tx2} lost`);
      assert.deepEqual(await program(), before, 'the restarted agent took the same program over');
    });

    await t.test('host-gw: every pod reaches every pod over the routed fast path', async () => {
      await labSwitchBackend(name, 'host-gw', undefined, { fastPath: 'bpf' });
      const s = await readState(name);
      const st = await loaderStatus(n1);
      assert.deepEqual(
        Object.keys(st.attached).sort(),
        [...pods('n1').map((p) => p.hostVeth!), 'eth0'].sort(),
      );
      const before = await kernelCounters(n1);
      assert.deepEqual(await allPairsFailures(s), []);
      assert.equal(await tcpTransfer(a1.netns, b1.netns, b1.ip, 10 * MiB), 10 * MiB);
      const after = await kernelCounters(n1);
      assert.ok(
        after.fast_routed! - before.fast_routed! >= 160,
        'routed to the peer node by bpf_redirect_neigh',
      );
      assert.ok(after.fast_in! > before.fast_in!);
    });

    await t.test(
      'udp beside the fast path: peers through weft-udp, local pods still redirected',
      async () => {
        await labSwitchBackend(name, 'udp', undefined, { fastPath: 'bpf' });
        const s = await readState(name);
        const st = await loaderStatus(n1);
        assert.equal(st.peers, 0, 'no peer entry: udp peers are reached through the TUN device');
        const before = await kernelCounters(n1);
        assert.deepEqual(await allPairsFailures(s), []);
        assert.equal(await tcpTransfer(a1.netns, b1.netns, b1.ip, 10 * MiB), 10 * MiB);
        const after = await kernelCounters(n1);
        assert.ok(after.fast_local! > before.fast_local!, 'same node: bpf_redirect_peer');
        assert.ok(after.slow_unknown_destination! > before.slow_unknown_destination!, 'peers: the stack');
        await labSwitchBackend(name, 'host-gw', undefined, { fastPath: 'bpf' });
      },
    );

    const idsOf = async (nodes: NodeState[]) => {
      const progs: number[] = [];
      const maps: number[] = [];
      for (const n of nodes)
        for (const o of (await loaderStatus(n)).objects) {
          progs.push(o.program);
          maps.push(o.cfgMap, ...o.maps);
        }
      return { progs, maps };
    };

    await t.test(
      '--fast-path none removes every program and map of weft; pods still reach each other',
      async () => {
        const ids = await idsOf(state.nodes);
        assert.equal(ids.progs.length, 3);
        await labSwitchBackend(name, 'host-gw', undefined, { fastPath: 'none' });
        for (const n of state.nodes) {
          const st = await loaderStatus(n);
          assert.deepEqual([st.objects, st.attached], [[], {}], `${n.name}: nothing of weft's left`);
        }
        assert.ok(
          await eventually(async () => (await survivingBpfObjects(ids.progs, ids.maps)).length === 0, 5_000),
          `bpftool still shows ${(await survivingBpfObjects(ids.progs, ids.maps)).join(', ')}`,
        );
        assert.deepEqual(await allPairsFailures(await readState(name)), []);
      },
    );

    await t.test('weft leave removes the node’s fast path with the rest of its data path', async () => {
      await labSwitchBackend(name, 'vxlan', undefined, { fastPath: 'bpf' });
      const ids = await idsOf([n3]);
      assert.equal(ids.progs.length, 1);
      const r = await run(process.execPath, [WEFT, 'leave', '--socket', join(n3.dir, 'agent.sock')]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(await eventually(async () => (await loaderStatus(n3)).objects.length === 0, 10_000));
      assert.deepEqual((await loaderStatus(n3)).attached, {});
      assert.ok(
        await eventually(async () => (await survivingBpfObjects(ids.progs, ids.maps)).length === 0, 5_000),
        `bpftool still shows ${(await survivingBpfObjects(ids.progs, ids.maps)).join(', ')}`,
      );
      void n2;
    });
  },
);
