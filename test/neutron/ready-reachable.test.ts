// weft-test: exclusive neutron-dataplane (its hypervisor namespaces exist once per machine)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readState, type LabState } from '../../src/lab/lab.js';
import { spoofDrops } from '../../src/lab/neutron-evidence.js';
import { NEUTRON_URL } from '../../src/lab/neutron-underlay.js';
import { run } from '../../src/util/exec.js';
import { etcdctl, inNs, pings, upLab } from '../helpers/lab.js';
import { inNeutronTurn } from './fixture-turn.js';

const WEFT = fileURLToPath(new URL('../../src/cli/weft.js', import.meta.url));
const weft = (args: string[]) =>
  run(process.execPath, [WEFT, ...args], { allowFailure: true, timeoutMs: 300_000 });

async function neutron<T>(path: string): Promise<T> {
  return (await (await fetch(`${NEUTRON_URL}/v2.0${path}`)).json()) as T;
}

/** What weft has in Neutron for the lab: every address pair on a node port, every route on the router. */
async function weftObjects(s: LabState): Promise<{ pairs: string[]; routes: string[] }> {
  const pairs: string[] = [];
  for (const [node, id] of Object.entries(s.neutron!.ports)) {
    const p = await neutron<{ port: { allowed_address_pairs: { ip_address: string }[] } }>(`/ports/${id}`);
    for (const x of p.port.allowed_address_pairs) pairs.push(`${node}:${x.ip_address}`);
  }
  const r = await neutron<{ router: { routes: { destination: string; nexthop: string }[] } }>(
    `/routers/${s.neutron!.routerId}`,
  );
  return {
    pairs: pairs.sort(),
    routes: r.router.routes.map((x) => `${x.destination} via ${x.nexthop}`).sort(),
  };
}

/** One ping per ordered pod pair, no retry: the pairs that did not answer. */
async function singlePingFailures(s: LabState): Promise<string[]> {
  const out: string[] = [];
  await Promise.all(
    s.pods.flatMap((a) =>
      s.pods
        .filter((b) => b.node !== a.node)
        .map(async (b) => {
          const r = await inNs(a.netns, ['ping', '-n', '-q', '-c', '1', '-W', '1', b.ip]);
          if (r.code !== 0) out.push(`${a.name}->${b.name}`);
        }),
    ),
  );
  return out.sort();
}

/**
 * On real Neutron (3 node VMs, 2 hypervisors, 2 subnets behind a router): `lab up` and `lab backend`
 * return only when pods reach each other; switching away from neutron leaves no pair or route of
 * weft's; the talk's fix (host-gw + address pairs) carries one subnet and nothing more.
 */
test(
  'Neutron: ready means reachable; switching away from neutron releases its pairs and routes',
  { timeout: 1_500_000 },
  async (t) => {
    const { state, down } = await inNeutronTurn(() =>
      upLab({ nodes: 3, podsPerNode: 1, underlay: 'neutron', backend: 'neutron' }),
    );
    t.after(down);
    const name = state.name;
    const pod = (n: string) => state.pods.find((p) => p.node === n)!;
    const sock = (n: string) => join(state.nodes.find((x) => x.name === n)!.dir, 'agent.sock');

    await t.test('right after lab up every pod pair answers a single ping', async () => {
      assert.deepEqual(await singlePingFailures(state), []);
    });

    await t.test('weft status shows every peer ready, reached over the cloud', async () => {
      const r = await weft(['status', '--socket', sock('n1')]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /^ready: {4}yes$/m);
      assert.match(r.stdout, /^peers: {4}2 \(2 ready\)$/m);
      assert.match(r.stdout, /^SUBNET\s+PUBLIC IP\s+PATH\s+STATE\s+REASON$/m);
      assert.match(r.stdout, /10\.0\.1\.13\s+direct\s+ready/);
      assert.match(r.stdout, /10\.0\.2\.12\s+cloud\s+ready\s+via router 10\.0\.1\.1/);
    });

    await t.test('after lab backend host-gw no address pair or router route of weft stays', async () => {
      const before = await weftObjects(state);
      assert.equal(before.pairs.length, 3, `neutron made a pair per node: ${before.pairs.join(' ')}`);
      assert.equal(before.routes.length, 3, `and a route per node: ${before.routes.join(' ')}`);
      const r = await weft(['lab', 'backend', 'host-gw', '--name', name]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await weftObjects(state), { pairs: [], routes: [] });
      const records = await etcdctl(state, [
        'get',
        '--prefix',
        '--keys-only',
        '/coreos.com/network/cloud/neutron/',
      ]);
      assert.equal(records.stdout.trim(), '', 'no ownership record left');
    });

    await t.test(
      'plain host-gw on Neutron: same-subnet pods dropped, the off-subnet peer refused by name',
      async () => {
        const s = await readState(state.name);
        const n1 = s.nodes.find((n) => n.name === 'n1')!;
        const before = await spoofDrops(s, n1);
        assert.equal(await pings(pod('n1').netns, pod('n3').ip, 2), false, 'pods on n3 unreachable');
        const after = await spoofDrops(s, n1);
        assert.ok(after >= before + 2, `dropped by n1's port security (anti-spoofing ${before} → ${after})`);
        const st = await weft(['status', '--socket', sock('n1')]);
        assert.match(
          st.stdout,
          /10\.0\.2\.12\s+unreachable\s+refused\s+peer \S+ at 10\.0\.2\.12 is not on-link on eth0 \(10\.0\.1\.0\/24\): host-gw needs every node on one L2 segment/,
        );
      },
    );

    await t.test('host-gw with the 2016 fix: pairs only, one subnet reached, nothing routed', async () => {
      const r = await weft(['lab', 'backend', 'host-gw', '--address-pairs', '--name', name]);
      assert.equal(r.code, 0, r.stderr);
      const s = await readState(name);
      assert.equal(s.addressPairs, true);
      assert.ok(await pings(pod('n1').netns, pod('n3').ip), 'the pairs let pod traffic through');
      assert.equal(await pings(pod('n1').netns, pod('n2').ip), false, 'no route to the other subnet');
      const o = await weftObjects(s);
      assert.equal(o.pairs.length, 3);
      assert.deepEqual(o.routes, []);
    });

    await t.test(
      'back to neutron: every pod pair answers at once; a node added answers at once too; then vxlan: nothing left again',
      async () => {
        let r = await weft(['lab', 'backend', 'neutron', '--name', name]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal((await readState(name)).addressPairs, undefined, 'the fix was removed first');
        assert.deepEqual(await singlePingFailures(await readState(name)), []);
        // lab node add returns once every node reaches the new one (its cloud paths probed both ways).
        r = await weft(['lab', 'node', 'add', '--name', name, '--pods', '1']);
        assert.equal(r.code, 0, r.stderr);
        assert.match(
          r.stdout + r.stderr,
          /node n4 \(10\.0\.\d\.14\) joined; its agent is ready and every node reaches it/,
        );
        const s = await readState(name);
        assert.equal(s.pods.length, 4);
        assert.deepEqual(await singlePingFailures(s), [], 'single pings right after lab node add');
        r = await weft(['lab', 'backend', 'vxlan', '--name', name]);
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(await weftObjects(s), { pairs: [], routes: [] });
        assert.deepEqual(await singlePingFailures(s), [], 'vxlan carries every pair');
      },
    );
  },
);
