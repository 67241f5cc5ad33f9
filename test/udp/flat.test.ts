import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { readSubnetEnv } from '../../src/config/subnet-env.js';
import { labDown, type NodeState } from '../../src/lab/lab.js';
import { alive } from '../../src/util/process.js';
import { parseIPv4 } from '../../src/util/ipv4.js';
import { allPairsFailures, eventually, inNs, tcpTransfer, upLab } from '../helpers/lab.js';
import { capture, dataPath, ipString, ipv4, metric, sendDatagrams } from './helpers.js';

test(
  '3-node flat lab on udp: reachability, pod MTU, a 10 MiB transfer, the wire format, ICMP errors, hostile datagrams',
  { timeout: 240_000 },
  async (t) => {
    const { state, down } = await upLab({ nodes: 3, podsPerNode: 2, underlay: 'flat', backend: 'udp' });
    t.after(down);
    const [n1, n2] = state.nodes as [NodeState, NodeState, NodeState];
    const podOn = (n: NodeState) => state.pods.find((p) => p.node === n.name)!;
    const [a, b] = [podOn(n1), podOn(n2)];
    const subnet1 = (await readSubnetEnv(join(n1.dir, 'subnet.env'))).subnet;
    const tunnelAddr1 = subnet1.toString().replace(/\.0\/24$/, '.0');

    await t.test('every pod reaches every other pod, on the same node and across nodes', async () => {
      assert.deepEqual(await allPairsFailures(state), []);
    });

    await t.test('the pod MTU is the underlay MTU minus 28, in the pods and in subnet.env', async () => {
      const mtu = (ns: string, dev: string) =>
        inNs(ns, ['cat', `/sys/class/net/${dev}/mtu`]).then((r) => Number(r.stdout));
      assert.equal(await mtu(n1.netns, 'eth0'), 1500);
      assert.equal(await mtu(a.netns, 'eth0'), 1472);
      assert.equal(await mtu(n1.netns, 'weft.udp'), 1472);
      assert.equal((await readSubnetEnv(join(n1.dir, 'subnet.env'))).mtu, 1472);
    });

    await t.test(
      'a 10 MiB TCP transfer across nodes arrives intact, moved in batches both ways',
      async () => {
        const bytes = 10 * 1024 * 1024;
        assert.equal(
          await tcpTransfer(a.netns, b.netns, b.ip, bytes),
          bytes,
          'the receiver counted every byte',
        );
        // The sender's data path sent several segments per system call (UDP GSO), the receiver's wrote
        // several per TUN write (coalesced). Counters follow the packets by a moment: read until they do.
        const per = async (n: NodeState, call: string) =>
          ((await metric(n, 'weft_udp_batch_packets_sum', { call })) ?? 0) /
          ((await metric(n, 'weft_udp_batch_packets_count', { call })) ?? 1);
        for (const [n, call] of [
          [n1, 'send'],
          [n2, 'tun_write'],
        ] as const)
          assert.ok(
            await eventually(async () => (await per(n, call)) > 2, 5000),
            `${n.name}: ${await per(n, call)} packets per ${call}`,
          );
      },
    );

    await t.test(
      'on the wire: UDP to port 8285, each datagram exactly one raw IPv4 packet of the pods',
      async () => {
        const caps = await capture(n2.netns, 'eth0', `udp dst port 8285 and src host ${n1.publicIP}`, 3, () =>
          inNs(a.netns, ['ping', '-c', '3', '-i', '0.2', b.ip]),
        );
        assert.equal(caps.length, 3);
        for (const { outer } of caps) {
          const ihl = (outer[0]! & 15) * 4;
          assert.equal(outer[9], 17, 'outer protocol UDP');
          assert.equal(outer.readUInt16BE(ihl + 2), 8285, 'destination port 8285');
          const inner = outer.subarray(ihl + 8);
          assert.equal(inner[0]! >> 4, 4, 'the payload is an IPv4 packet, no other header');
          assert.equal(
            inner.readUInt16BE(2),
            outer.readUInt16BE(ihl + 4) - 8,
            'one packet fills the datagram',
          );
          assert.deepEqual([ipString(inner, 12), ipString(inner, 16), inner[9]], [a.ip, b.ip, 1]);
        }
      },
    );

    await t.test(
      'ICMP errors from the tunnel address: net unreachable without a peer, TTL exceeded',
      async () => {
        const leased = await Promise.all(
          state.nodes.map(async (n) => (await readSubnetEnv(join(n.dir, 'subnet.env'))).subnet),
        );
        const free = [250, 249, 248, 247]
          .map((k) => `10.244.${k}.1`)
          .find((ip) => !leased.some((c) => c.contains(parseIPv4(ip)!)))!;
        const from = new RegExp(`From ${tunnelAddr1.replace(/\./g, '\\.')} .*`);
        const r1 = await inNs(a.netns, ['ping', '-c', '1', '-W', '2', free]);
        assert.match(r1.stdout, new RegExp(from.source + 'Destination Net Unreachable'));
        // TTL 2: n1's kernel forwards it with TTL 1 into the tunnel, which may not carry it further.
        const r2 = await inNs(a.netns, ['ping', '-c', '1', '-W', '2', '-t', '2', b.ip]);
        assert.match(r2.stdout, new RegExp(from.source + 'Time to live exceeded'));
        const sent = () => metric(n1, 'weft_udp_icmp_errors_sent_total', { type: 'net_unreachable' });
        assert.ok(
          await eventually(async () => (await sent()) === 1, 5000),
          `net unreachable sent: ${await sent()}`,
        );
      },
    );

    await t.test('hostile datagrams are dropped and counted by reason; the data path stays up', async () => {
      const before = await dataPath(n1);
      const drops = async (reason: string) =>
        (await metric(n1, 'weft_udp_dropped_packets_total', { reason })) ?? 0;
      const reasons = [
        'short',
        'not_ipv4',
        'bad_header',
        'bad_length',
        'truncated',
        'wrong_dest',
        'not_peer',
      ];
      const was = Object.fromEntries(
        await Promise.all(reasons.map(async (r) => [r, await drops(r)] as const)),
      );
      const dst = a.ip;
      const bad = ipv4({ src: b.ip, dst, payload: Buffer.alloc(8) });
      bad.writeUInt16BE(bad.readUInt16BE(10) ^ 0xffff, 10); // header checksum broken
      const fromPeer = [
        Buffer.alloc(0),
        Buffer.from([0x45, 0, 0]),
        ipv4({ src: b.ip, dst, version: 6, payload: Buffer.alloc(20) }),
        bad,
        ipv4({ src: b.ip, dst, payload: Buffer.alloc(20), totalLength: 100 }),
        ipv4({ src: b.ip, dst, proto: 6, payload: Buffer.alloc(10) }),
        ipv4({ src: b.ip, dst: '10.244.250.9', payload: Buffer.alloc(8) }),
        ...Array.from({ length: 10 }, () => randomBytes(300)),
      ];
      // From n2's own address (a current peer), but not from its port 8285: any port is Flannel's format.
      await sendDatagrams(n2.netns, n2.publicIP, n1.publicIP, 8285, fromPeer);
      // From outside the cluster (the lab's external host, routed in): not a peer, even with a good packet.
      const fromStranger = [
        ipv4({ src: '10.244.7.7', dst, payload: Buffer.alloc(8) }),
        ...Array.from({ length: 9 }, () => randomBytes(64)),
      ];
      await sendDatagrams(state.external.netns, state.external.ip, n1.publicIP, 8285, fromStranger);
      await new Promise((r) => setTimeout(r, 1500)); // the agent reads the counters every second
      const grew = async (r: string) => (await drops(r)) - was[r]!;
      assert.equal(await grew('short'), 2);
      assert.ok((await grew('not_ipv4')) >= 1);
      assert.ok((await grew('bad_header')) >= 1);
      assert.equal(await grew('bad_length'), 1);
      assert.equal(await grew('truncated'), 1);
      assert.equal(await grew('wrong_dest'), 1);
      assert.equal(await grew('not_peer'), fromStranger.length);
      let total = 0;
      for (const r of reasons) total += await grew(r);
      assert.equal(
        total,
        fromPeer.length + fromStranger.length,
        'every hostile datagram was dropped and counted',
      );
      const after = await dataPath(n1);
      assert.equal(after?.pid, before?.pid, 'the same weft-udp process (no crash, no restart)');
      assert.equal(after?.restarts, 0);
      assert.deepEqual(await allPairsFailures(state), [], 'traffic between real peers goes on');
    });

    await t.test('lab down removes the data paths with the lab', async () => {
      const pids = await Promise.all(state.nodes.map(async (n) => (await dataPath(n))?.pid));
      assert.ok(pids.every((p) => p !== undefined));
      await labDown(state.name);
      for (const p of pids) assert.equal(alive(p!), false, `weft-udp ${p} is gone`);
    });
  },
);
