// weft-test: exclusive neutron-dataplane (its hypervisor namespaces exist once per machine)
// `weft cloud-routes` on real Neutron (the fixture's data plane: 2 hypervisors, Neutron VXLAN, a
// network with two subnets behind a router, port security on) with nodes programmed exactly as stock
// flanneld host-gw programs itself and no weft agent: the coordinator alone gives their pods native
// Neutron routing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NEUTRON_URL, neutronInUse } from '../../src/lab/neutron-underlay.js';
import { NEUTRON_CLOUD } from '../../src/lab/neutron-underlay.js';
import { SubnetRegistry, connectEtcd } from '../../src/store/registry.js';
import { iperf3 } from '../../src/bench/tools.js';
import { agentGet } from '../../src/cli/status-command.js';
import { startTestEtcd } from '../helpers/etcd.js';
import { eventually, pings, uniqueName } from '../helpers/lab.js';
import { flannelHostGwOnNeutron, type FlannelCluster, type FlannelNode } from './cloud-routes-lab.js';

const WEFT = fileURLToPath(new URL('../../src/cli/weft.js', import.meta.url));

async function neutron<T>(path: string): Promise<T> {
  return (await (await fetch(`${NEUTRON_URL}/v2.0${path}`)).json()) as T;
}
const routesOf = async (id: string) =>
  (
    await neutron<{ router: { routes: { destination: string; nexthop: string }[] } }>(`/routers/${id}`)
  ).router.routes
    .map((r) => `${r.destination} via ${r.nexthop}`)
    .sort();
const portOf = async (id: string) =>
  (
    await neutron<{
      port: { allowed_address_pairs: { ip_address: string }[]; port_security_enabled: boolean };
    }>(`/ports/${id}`)
  ).port;
const pairsOf = async (id: string) =>
  (await portOf(id)).allowed_address_pairs.map((p) => p.ip_address).sort();

/** Pod-to-pod pairs that do not answer one ping (a second try for ARP/first-packet loss). */
async function failures(nodes: FlannelNode[]): Promise<string[]> {
  const out: string[] = [];
  for (const a of nodes)
    for (const b of nodes.filter((x) => x !== a)) {
      const [pa, pb] = [a.pods[0]!, b.pods[0]!];
      if (!((await pings(pa.netns, pb.ip)) || (await pings(pa.netns, pb.ip, 2))))
        out.push(`${pa.name}->${pb.name}`);
    }
  return out;
}

test(
  'cloud-routes gives stock-flanneld host-gw nodes native Neutron routing with port security on, and removes only its own objects',
  {
    timeout: 900_000,
    skip: (await neutronInUse()) && 'the Neutron fixture is in use by another lab or test',
  },
  async (t) => {
    const etcd = await startTestEtcd();
    t.after(() => etcd.stop());
    const registry = new SubnetRegistry(connectEtcd([etcd.endpoint]), '/coreos.com/network');
    t.after(() => registry.close());
    await registry.putConfigText('{"Network":"10.244.0.0/16","Backend":{"Type":"host-gw"}}');

    const name = uniqueName('cr');
    const c: FlannelCluster = await flannelHostGwOnNeutron(name, 3, registry, (m) => t.diagnostic(m));
    t.after(() => c.down());
    const [n1, n2, n3] = c.nodes as [FlannelNode, FlannelNode, FlannelNode];
    // n1 (10.0.1.11, nhost1) and n3 (10.0.1.13, nhost2) share a subnet; n2 (10.0.2.12, nhost2) is behind the router.
    for (const n of c.nodes) await c.putLease(n);
    const refused = await c.programRoutes();
    assert.deepEqual(
      refused.map((r) => `${r.node}->${r.peer}`).sort(),
      ['n1->n2', 'n2->n1', 'n2->n3', 'n3->n2'],
      'the kernel refuses host-gw routes to off-link peers, as it refuses flanneld',
    );
    const routerId = c.neutron.routerId;

    await t.test(
      'without cloud-routes, Neutron drops the pod traffic (port security on, no pair, no route)',
      async () => {
        for (const n of c.nodes) assert.equal((await portOf(n.portId)).port_security_enabled, true);
        assert.equal(await pings(n1.pods[0]!.netns, n3.pods[0]!.ip, 2), false, 'same subnet: anti-spoofing');
        assert.equal(await pings(n1.pods[0]!.netns, n2.pods[0]!.ip, 2), false, 'across subnets: no route');
      },
    );

    // The operator's objects: a route via n3 into the pod network, and a pair on n1's port.
    const opRoute = `10.244.99.0/24 via ${n3.ip}`;
    await fetch(`${NEUTRON_URL}/v2.0/routers/${routerId}/add_extraroutes`, {
      method: 'PUT',
      body: JSON.stringify({ router: { routes: [{ destination: '10.244.99.0/24', nexthop: n3.ip }] } }),
    });
    await fetch(`${NEUTRON_URL}/v2.0/ports/${n1.portId}`, {
      method: 'PUT',
      body: JSON.stringify({ port: { allowed_address_pairs: [{ ip_address: '10.98.0.0/24' }] } }),
    });

    const socket = join(c.dir, 'cloud-routes.sock');
    const log = await open(join(c.dir, 'cloud-routes.log'), 'a');
    const t0 = performance.now();
    const child: ChildProcess = spawn(
      process.execPath,
      [
        WEFT,
        'cloud-routes',
        '--etcd-endpoints',
        etcd.endpoint,
        '--cloud',
        NEUTRON_CLOUD,
        '--cloud-config',
        c.neutron.cloudsYaml,
        '--cluster-name',
        `wl-${name}`,
        '--status-socket',
        socket,
      ],
      { stdio: ['ignore', log.fd, log.fd] },
    );
    await log.close();
    const exited = new Promise<number | null>((r) => child.once('exit', r));
    t.after(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    const status = async () => {
      const r = await agentGet(socket, '/status').catch(() => undefined);
      return r && (JSON.parse(r.body) as { ready: boolean; nodes: { node: string; state: string }[] });
    };

    await t.test(
      'every pod reaches every pod: same subnet across hypervisors through the pairs, across subnets through the router',
      async () => {
        assert.ok(
          await eventually(async () => (await status())?.ready === true, 60_000),
          'cloud-routes ready',
        );
        const programmed = (performance.now() - t0) / 1000;
        assert.ok(
          await eventually(async () => (await failures(c.nodes)).length === 0, 30_000, 100),
          `unreachable: ${(await failures(c.nodes)).join(' ')}`,
        );
        t.diagnostic(
          `3 nodes: programmed ${programmed.toFixed(1)} s after start (process start included), all pod pairs answer ${((performance.now() - t0) / 1000).toFixed(1)} s after start`,
        );
        assert.deepEqual(await routesOf(routerId), [
          `10.244.1.0/24 via ${n1.ip}`,
          `10.244.2.0/24 via ${n2.ip}`,
          `10.244.3.0/24 via ${n3.ip}`,
          opRoute,
        ]);
        assert.deepEqual(await pairsOf(n1.portId), ['10.244.1.0/24', '10.98.0.0/24']);
        for (const n of c.nodes)
          assert.equal((await portOf(n.portId)).port_security_enabled, true, 'port security stays on');
      },
    );

    await t.test('iperf3 across Neutron, pod to pod', async () => {
      const ep = (n: FlannelNode) => ({ ...n.pods[0]! });
      const o = { streams: 1, seconds: 3, warmup: 1, port: 5201 };
      const same = await iperf3(ep(n1), ep(n3), o);
      const routed = await iperf3(ep(n1), ep(n2), o);
      assert.ok(same.gbps > 0 && routed.gbps > 0);
      t.diagnostic(
        `iperf3 1 stream: n1p1->n3p1 same subnet across hypervisors ${same.gbps.toFixed(2)} Gbit/s; n1p1->n2p1 through the router ${routed.gbps.toFixed(2)} Gbit/s`,
      );
    });

    let n4: FlannelNode;
    await t.test('a new flanneld node becomes reachable once its lease appears', async () => {
      n4 = await c.addNode(); // 10.0.2.14 on nhost1: behind the router from n1, on-link with n2
      await c.programRoutes();
      const ta = performance.now();
      await c.putLease(n4);
      assert.ok(
        await eventually(() => pings(n1.pods[0]!.netns, n4.pods[0]!.ip), 30_000, 50),
        'n1p1 -> n4p1 (router)',
      );
      const routed = (performance.now() - ta) / 1000;
      assert.ok(
        await eventually(() => pings(n2.pods[0]!.netns, n4.pods[0]!.ip), 30_000, 50),
        'n2p1 -> n4p1 (pairs)',
      );
      t.diagnostic(
        `new node: lease written -> first ping answered through the router after ${routed.toFixed(2)} s, same subnet after ${((performance.now() - ta) / 1000).toFixed(2)} s`,
      );
      assert.deepEqual(await failures(c.nodes), []);
    });

    await t.test('removing a lease removes its pair and route, and nothing it did not make', async () => {
      await c.removeLease(n3);
      assert.ok(
        await eventually(async () => (await pairsOf(n3.portId)).length === 0, 15_000),
        "n3's pair removed",
      );
      assert.ok(
        await eventually(
          async () => !(await routesOf(routerId)).includes(`10.244.3.0/24 via ${n3.ip}`),
          15_000,
        ),
        "n3's route removed",
      );
      assert.deepEqual(await routesOf(routerId), [
        `10.244.1.0/24 via ${n1.ip}`,
        `10.244.2.0/24 via ${n2.ip}`,
        `10.244.4.0/24 via ${n4.ip}`,
        opRoute,
      ]);
      assert.deepEqual(
        await pairsOf(n1.portId),
        ['10.244.1.0/24', '10.98.0.0/24'],
        "the operator's pair stays",
      );
      // n1 still routes to n3's pods (flanneld's route is there): Neutron now drops them again.
      await new Promise((r) => setTimeout(r, 2000));
      assert.equal(
        await pings(n1.pods[0]!.netns, n3.pods[0]!.ip, 2),
        false,
        'n3 pods cut off by anti-spoofing again',
      );
      assert.deepEqual(await failures([n1, n2, n4]), [], 'the others are undisturbed');
      const st = await status();
      assert.deepEqual(
        st?.nodes.map((n) => n.node),
        [n1.ip, n2.ip, n4.ip],
      );
    });

    await t.test('SIGTERM stops it and keeps the cloud objects (pods keep flowing)', async () => {
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
      assert.ok((await routesOf(routerId)).includes(`10.244.4.0/24 via ${n4.ip}`));
      assert.ok(await pings(n1.pods[0]!.netns, n4.pods[0]!.ip));
    });
  },
);
