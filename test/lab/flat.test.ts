import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { labDir } from '../../src/lab/journal.js';
import { labDown, labSwitchBackend, labStatus, readState } from '../../src/lab/lab.js';
import { listNetns, cmdline } from '../../src/lab/netns.js';
import { run } from '../../src/util/exec.js';
import { allPairsFailures, inNs, tcpTransfer, upLab } from '../helpers/lab.js';

test(
  '3-node flat lab: vxlan then host-gw, pod MTU, a 10 MB transfer, Flannel keyspace, complete teardown',
  { timeout: 240_000 },
  async (t) => {
    const rootLinks = async () =>
      (await run('ip', ['-o', 'link', 'show'])).stdout
        .split('\n')
        .map((l) => l.split(':')[1]?.trim().split('@')[0])
        .filter(Boolean);
    const linksBefore = await rootLinks();
    const { state, down } = await upLab({ nodes: 3, podsPerNode: 2, underlay: 'flat', backend: 'vxlan' });
    t.after(down);
    const name = state.name;

    await t.test(
      "pods were attached through each node's agent (the weft-cni fast path), not by fallback",
      async () => {
        // The shim falls back to the Node plugin silently; only the agents' logs show who served the ADDs.
        for (const n of state.nodes) {
          const log = await readFile(join(n.dir, 'agent.log'), 'utf8');
          const adds = log
            .split('\n')
            .filter((l) => /"command":"ADD".*"code":0.*"msg":"CNI request served"/.test(l));
          assert.equal(adds.length, 2, `${n.name}: its 2 pods' ADDs served by its agent`);
        }
      },
    );

    await t.test('status lists 3 nodes with distinct subnets and 6 pods with addresses', async () => {
      const s = await labStatus(name);
      assert.equal(s.nodes.length, 3);
      assert.equal(new Set(s.nodes.map((n) => n.subnet)).size, 3);
      assert.ok(s.nodes.every((n) => n.ready && n.subnet && n.agentPid > 0));
      assert.equal(s.pods.length, 6);
      assert.ok(s.pods.every((p) => /^10\.244\.\d+\.\d+$/.test(p.ip)));
      assert.equal(s.etcd.netns, `wl-${name}-etcd`);
    });

    await t.test('vxlan: every pod reaches every other pod, same node and across nodes', async () => {
      assert.deepEqual(await allPairsFailures(state), []);
    });

    await t.test(
      'vxlan: pod MTU is the underlay MTU minus 50, and a 10 MB TCP transfer across nodes completes',
      async () => {
        const [a, b] = [state.pods.find((p) => p.node === 'n1')!, state.pods.find((p) => p.node === 'n2')!];
        const mtu = (ns: string, dev: string) =>
          inNs(ns, ['cat', `/sys/class/net/${dev}/mtu`]).then((r) => Number(r.stdout));
        assert.equal(await mtu(state.nodes[0]!.netns, 'eth0'), 1500);
        assert.equal(await mtu(a.netns, 'eth0'), 1450);
        const bytes = 10 * 1024 * 1024;
        assert.equal(
          await tcpTransfer(a.netns, b.netns, b.ip, bytes),
          bytes,
          'the receiver counted every byte',
        );
      },
    );

    await t.test(
      "the etcd keyspace holds the config and one lease per node in Flannel's format",
      async () => {
        const r = await inNs(state.etcd.netns!, [
          'env',
          'ETCDCTL_API=3',
          'etcdctl',
          `--endpoints=${state.etcd.endpoints[0]}`,
          'get',
          '--prefix',
          '/coreos.com/network/',
          '-w',
          'json',
        ]);
        const kvs = (
          JSON.parse(r.stdout) as { kvs: { key: string; value: string; lease?: number }[] }
        ).kvs.map((kv) => ({
          key: Buffer.from(kv.key, 'base64').toString(),
          value: JSON.parse(Buffer.from(kv.value, 'base64').toString()) as Record<string, unknown>,
          lease: kv.lease,
        }));
        const config = kvs.find((kv) => kv.key === '/coreos.com/network/config');
        assert.deepEqual(config?.value, {
          Network: '10.244.0.0/16',
          SubnetLen: 24,
          Backend: { Type: 'vxlan' },
        });
        const leases = kvs.filter((kv) => kv.key.startsWith('/coreos.com/network/subnets/'));
        assert.equal(leases.length, 3);
        for (const l of leases) {
          assert.match(l.key, /^\/coreos\.com\/network\/subnets\/10\.244\.\d+\.0-24$/);
          assert.ok(l.lease && l.lease > 0, 'lease keys carry an etcd lease (TTL)');
          assert.deepEqual(Object.keys(l.value).sort(), [
            'BackendData',
            'BackendType',
            'PublicIP',
            'PublicIPv6',
          ]);
          assert.equal(l.value.BackendType, 'vxlan');
          assert.match(String(l.value.PublicIP), /^198\.18\.0\.1[123]$/);
          const bd = l.value.BackendData as { VNI: number; VtepMAC: string };
          assert.equal(bd.VNI, 1);
          assert.match(bd.VtepMAC, /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
        }
      },
    );

    await t.test("host-gw: every pod reaches every other pod; pod MTU equals the underlay's", async () => {
      await labSwitchBackend(name, 'host-gw');
      const s = await readState(name);
      assert.deepEqual(await allPairsFailures(s), []);
      const r = await inNs(s.pods[0]!.netns, ['cat', '/sys/class/net/eth0/mtu']);
      assert.equal(Number(r.stdout), 1500);
      const link = await inNs(s.nodes[0]!.netns, ['ip', '-d', 'link', 'show', 'type', 'vxlan']);
      assert.equal(link.stdout.trim(), '', 'the VXLAN device is gone with host-gw');
    });

    await t.test('lab down leaves no namespace, process, device or file', async () => {
      const s = await readState(name);
      const pids = [s.etcd.pid, ...s.nodes.map((n) => n.agentPid)];
      await labDown(name);
      assert.deepEqual(
        (await listNetns()).filter((n) => n.startsWith(`wl-${name}-`)),
        [],
      );
      for (const p of pids) assert.equal(await cmdline(p), undefined, `process ${p} is gone`);
      assert.equal(existsSync(labDir(name)), false);
      assert.deepEqual(
        (await rootLinks()).filter((l) => !linksBefore.includes(l)),
        [],
        'no device appeared in the root namespace',
      );
    });
  },
);
