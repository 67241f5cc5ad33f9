// `weft cloud-routes` against the real Neutron API (fixture, API-only) and a real etcd: Flannel's
// leases and nodes files in, address pairs and router routes out, exactly as Neutron reports them.
// The data path (pods pinging across Neutron ports) is in cloud-routes-neutron.test.ts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Etcd3 } from 'etcd3';
import { startNeutronAndEtcd, makeSubnet, type TestNeutron } from '../openstack/neutron-fixture.js';
import type { TestEtcd } from '../helpers/etcd.js';
import { eventually } from '../helpers/lab.js';
import type { NeutronClient } from '../../src/openstack/neutron.js';
import type { Port } from '../../src/openstack/types.js';
import { CloudRoutesCoordinator } from '../../src/cloud/coordinator.js';
import { EtcdOwnershipStore } from '../../src/cloud/ownership.js';
import { FileOwnershipStore } from '../../src/cloud/ownership-file.js';
import { FlannelEtcdSource, NodesFileSource } from '../../src/cloud/sources.js';
import { run } from '../../src/util/exec.js';

const WEFT = fileURLToPath(new URL('../../src/cli/weft.js', import.meta.url));

let neutron: TestNeutron;
let etcd: TestEtcd;
let kv: Etcd3;
let api: NeutronClient; // "the operator": raw API calls outside weft
let tmp: string;
let seq = 0;

let fixtures: Awaited<ReturnType<typeof startNeutronAndEtcd>> | undefined;
before(async () => {
  fixtures = await startNeutronAndEtcd();
  ({ neutron, etcd, kv } = fixtures);
  api = neutron.client;
  tmp = await mkdtemp(join(tmpdir(), 'weft-cloud-routes-'));
});
after(async () => {
  await fixtures?.stop();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

/** A router with two subnets of one network (10.<b>.1.0/24, 10.<b>.2.0/24) and a node port per IP. */
async function topo(hosts: string[]) {
  const b = 40 + ++seq;
  const router = await api.createRouter({ name: `cr-${b}` });
  const s1 = await makeSubnet(api, `10.${b}.1.0/24`, { routerId: router.id });
  const s2 = await makeSubnet(api, `10.${b}.2.0/24`, { routerId: router.id, networkId: s1.networkId });
  const ports: Record<string, Port> = {};
  for (const h of hosts) {
    const [sub, host] = h.split('.').map(Number) as [number, number];
    const ip = `10.${b}.${sub}.${host}`;
    ports[ip] = await api.createPort({
      network_id: s1.networkId,
      device_owner: 'weft:node',
      fixed_ips: [{ subnet_id: (sub === 1 ? s1 : s2).subnetId, ip_address: ip }],
    });
  }
  return { b, routerId: router.id, ports, ip: (h: string) => `10.${b}.${h}`, prefix: `/cr-${b}/network` };
}

const routesOf = async (id: string): Promise<string[]> =>
  (await api.getRouter(id)).routes.map((r) => `${r.destination} via ${r.nexthop}`).sort();
const pairsOf = async (p: Port): Promise<string[]> =>
  ((await api.getPort(p.id)).allowed_address_pairs ?? []).map((x) => x.ip_address).sort();
const putLease = (prefix: string, subnet: string, ip: string) =>
  kv
    .put(`${prefix}/subnets/${subnet.replace('/', '-')}`)
    .value(JSON.stringify({ PublicIP: ip, PublicIPv6: null, BackendType: 'host-gw', BackendData: null }));
const dropLease = (prefix: string, subnet: string) =>
  kv.delete().key(`${prefix}/subnets/${subnet.replace('/', '-')}`);

test('Flannel leases: each node gets its pair and router route; a lease removed takes exactly its own objects with it', async () => {
  const t = await topo(['1.11', '2.12', '1.13']);
  const [n1, n2, n3] = ['1.11', '2.12', '1.13'].map(t.ip) as [string, string, string];
  // The operator's own objects: a route via n3 into the pod network, the very route n2 will want, a pair on n1.
  await api.addExtraRoutes(t.routerId, [
    { destination: '10.244.9.0/24', nexthop: n3 },
    { destination: '10.244.2.0/24', nexthop: n2 },
  ]);
  await api.setAllowedAddressPairs(t.ports[n1]!.id, [{ ip_address: '10.98.0.0/24' }]);
  await putLease(t.prefix, '10.244.1.0/24', n1);
  await putLease(t.prefix, '10.244.2.0/24', n2);
  await putLease(t.prefix, '10.244.3.0/24', n3);

  const source = new FlannelEtcdSource([etcd.endpoint], t.prefix);
  const c = new CloudRoutesCoordinator({
    source,
    client: api,
    store: new EtcdOwnershipStore(kv, t.prefix),
    cluster: 'flannel-a',
    resyncSeconds: 60,
  });
  await c.start();
  try {
    const st = c.status();
    // "added" on the pass that made it, "present" on later ones: both mean weft's own.
    const own = (r: string | undefined) => (r === 'added' || r === 'present' ? 'own' : r);
    assert.deepEqual(
      st.nodes.map((n) => [
        n.node,
        n.state,
        n.subnets.map((s) => `${s.podCIDR} ${own(s.pair)}/${own(s.route)}`),
      ]),
      [
        [n1, 'programmed', ['10.244.1.0/24 own/own']],
        [n3, 'programmed', ['10.244.3.0/24 own/own']],
        [n2, 'programmed', ['10.244.2.0/24 own/external']],
      ],
    );
    assert.ok(st.ready && st.healthy, st.reasons.join('; '));
    assert.deepEqual(await routesOf(t.routerId), [
      `10.244.1.0/24 via ${n1}`,
      `10.244.2.0/24 via ${n2}`,
      `10.244.3.0/24 via ${n3}`,
      `10.244.9.0/24 via ${n3}`,
    ]);
    assert.deepEqual(await pairsOf(t.ports[n1]!), ['10.244.1.0/24', '10.98.0.0/24']);
    assert.deepEqual(await pairsOf(t.ports[n3]!), ['10.244.3.0/24']);

    // n3's lease goes (flanneld stopped, lease expired): its pair and route go, the operator's route via n3 stays.
    await dropLease(t.prefix, '10.244.3.0/24');
    assert.ok(
      await eventually(async () => (await pairsOf(t.ports[n3]!)).length === 0, 10_000),
      "n3's pair removed",
    );
    await c.idle();
    assert.deepEqual(await routesOf(t.routerId), [
      `10.244.1.0/24 via ${n1}`,
      `10.244.2.0/24 via ${n2}`,
      `10.244.9.0/24 via ${n3}`,
    ]);
    // n2's lease goes: its pair goes, but the route it found there (the operator's) stays.
    await dropLease(t.prefix, '10.244.2.0/24');
    assert.ok(await eventually(async () => (await pairsOf(t.ports[n2]!)).length === 0, 10_000));
    await c.idle();
    assert.deepEqual(await routesOf(t.routerId), [
      `10.244.1.0/24 via ${n1}`,
      `10.244.2.0/24 via ${n2}`,
      `10.244.9.0/24 via ${n3}`,
    ]);
    assert.deepEqual(
      c.status().reaped.map((r) => r.node),
      [n2, n3],
    );

    // n1 re-leases another subnet: the old pair and route are replaced, the operator's pair kept.
    await dropLease(t.prefix, '10.244.1.0/24');
    await putLease(t.prefix, '10.244.5.0/24', n1);
    assert.ok(
      await eventually(async () => (await routesOf(t.routerId)).includes(`10.244.5.0/24 via ${n1}`), 10_000),
    );
    await c.idle();
    assert.ok(!(await routesOf(t.routerId)).includes(`10.244.1.0/24 via ${n1}`));
    assert.deepEqual(await pairsOf(t.ports[n1]!), ['10.244.5.0/24', '10.98.0.0/24']);

    // Drift: someone removes n1's route by hand; the next pass puts it back.
    await api.removeExtraRoutes(t.routerId, [{ destination: '10.244.5.0/24', nexthop: n1 }]);
    c.kick('test');
    await c.idle();
    assert.ok((await routesOf(t.routerId)).includes(`10.244.5.0/24 via ${n1}`), 'route re-added');
  } finally {
    await c.stop();
  }
  // Stopping keeps the cloud objects (a coordinator restart must not cut pods off).
  assert.ok((await routesOf(t.routerId)).includes(`10.244.5.0/24 via ${n1}`));
});

test('nodes file (kubectl get nodes -o json): watched for changes, bad entries held, unreadable file changes nothing, records survive a restart', async () => {
  const t = await topo(['1.21', '2.22']);
  const [a, b] = [t.ip('1.21'), t.ip('2.22')];
  const file = join(tmp, `nodes-${t.b}.json`);
  const kubeNode = (name: string, ip: string, cidr: string | undefined) => ({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name },
    spec: cidr ? { podCIDR: cidr, podCIDRs: [cidr] } : {},
    status: {
      addresses: [
        { type: 'InternalIP', address: ip },
        { type: 'Hostname', address: name },
      ],
    },
  });
  // Written the safe way: to a temporary file, renamed over the old one.
  const write = async (items: unknown[]) => {
    await writeFile(`${file}.tmp`, JSON.stringify({ apiVersion: 'v1', kind: 'NodeList', items }));
    await rename(`${file}.tmp`, file);
  };
  await write([kubeNode('worker-a', a, '10.245.0.0/24'), kubeNode('worker-b', b, '10.245.1.0/24')]);
  const stateDir = join(tmp, `state-${t.b}`);
  let store: FileOwnershipStore | undefined;
  const make = () => {
    store?.close();
    store = new FileOwnershipStore(stateDir);
    return new CloudRoutesCoordinator({
      source: new NodesFileSource(file),
      client: api,
      store,
      cluster: 'kube-a',
      resyncSeconds: 60,
    });
  };
  let c = make();
  await c.start();
  try {
    assert.deepEqual(
      c.status().nodes.map((n) => `${n.node} ${n.state}`),
      ['worker-a programmed', 'worker-b programmed'],
    );
    assert.deepEqual(await routesOf(t.routerId), [`10.245.0.0/24 via ${a}`, `10.245.1.0/24 via ${b}`]);

    // worker-b's entry becomes unreadable: it is reported and held, not reaped.
    await write([kubeNode('worker-a', a, '10.245.0.0/24'), kubeNode('worker-b', b, '10.245.1.0/33')]);
    assert.ok(await eventually(async () => c.status().sourceProblems.length === 1, 5000));
    await c.idle();
    assert.match(c.status().sourceProblems[0]!, /entry 2 \(worker-b\): spec.podCIDR "10.245.1.0\/33" is not/);
    assert.deepEqual(await routesOf(t.routerId), [`10.245.0.0/24 via ${a}`, `10.245.1.0/24 via ${b}`]);

    // The file disappears: nothing changes, the coordinator says it cannot read its source.
    await rm(file);
    c.kick('test');
    await c.idle();
    assert.equal(c.status().healthy, false);
    assert.match(c.status().sourceError!, /cannot read .*ENOENT/);
    assert.deepEqual(await routesOf(t.routerId), [`10.245.0.0/24 via ${a}`, `10.245.1.0/24 via ${b}`]);
  } finally {
    await c.stop();
  }
  // A new coordinator (same state directory) on a file without worker-b removes what the old one made for it.
  await write([kubeNode('worker-a', a, '10.245.0.0/24')]);
  c = make();
  await c.start();
  try {
    assert.deepEqual(await routesOf(t.routerId), [`10.245.0.0/24 via ${a}`]);
    assert.deepEqual(await pairsOf(t.ports[b]!), []);
    assert.deepEqual(
      c.status().reaped.map((r) => r.node),
      ['worker-b'],
    );
  } finally {
    await c.stop();
    store?.close();
  }
});

/** `weft cloud-routes --once` against the fixture's API for a nodes file (cluster `cluster`, state in tmp). */
async function cliArgs(b: number, file: string, cluster: string): Promise<string[]> {
  const clouds = join(tmp, `clouds-${b}.yaml`);
  await writeFile(
    clouds,
    `clouds:\n  fixture:\n    auth_type: none\n    network_endpoint_override: ${neutron.url}\n`,
  );
  const state = join(tmp, `state-${b}`);
  return [
    WEFT,
    'cloud-routes',
    '--nodes-file',
    file,
    '--cloud',
    'fixture',
    '--cloud-config',
    clouds,
    '--cluster-name',
    cluster,
    '--state-dir',
    state,
    '--once',
  ];
}

test('--release reaches the cloud through the one node it initialised, also after reaping that node first', async () => {
  const t = await topo(['1.41', '1.42', '1.43']);
  const ips = ['1.41', '1.42', '1.43'].map((h) => t.ip(h));
  const nodes = ips.map((ip, i) => ({ node: `rel-${i + 1}`, nodeIP: ip, podCIDR: `10.247.${i + 1}.0/24` }));
  const file = join(tmp, `nodes-${t.b}.yaml`);
  const write = (order: typeof nodes) =>
    writeFile(
      file,
      order.map((n) => `- {node: ${n.node}, nodeIP: ${n.nodeIP}, podCIDR: ${n.podCIDR}}\n`).join(''),
    );
  await write(nodes);
  const args = await cliArgs(t.b, file, 'rel');
  const once = await run(process.execPath, args, { allowFailure: true });
  assert.equal(once.code, 0, once.stderr);
  assert.equal((await routesOf(t.routerId)).length, 3);
  // --release initialises the source's first node only; list first the node whose records come first,
  // so that the node it reaches the cloud through is reaped before the others.
  const records = JSON.parse(await readFile(join(tmp, `state-${t.b}`, 'ownership.json'), 'utf8')) as Record<
    string,
    string
  >;
  const first = Object.keys(records)
    .sort()
    .find((k) => k.startsWith('neutron/'))!;
  const firstOwner = (JSON.parse(records[first]!) as { node: string }).node;
  await write([...nodes.filter((n) => n.node === firstOwner), ...nodes.filter((n) => n.node !== firstOwner)]);
  const rel = await run(process.execPath, [...args.slice(0, -1), '--release'], { allowFailure: true });
  assert.equal(rel.code, 0, rel.stderr);
  assert.match(rel.stdout, /released the routes and pairs of 3 node\(s\)/, rel.stdout + rel.stderr);
  assert.deepEqual(await routesOf(t.routerId), []);
  for (const ip of ips) assert.deepEqual(await pairsOf(t.ports[ip]!), [], `pairs of ${ip}`);
});

test('a full router refuses the next node by name in one line (cloud-routes --once exits 2); the others are programmed', async () => {
  const t = await topo(['1.31', '1.32']);
  const [a, b] = [t.ip('1.31'), t.ip('1.32')];
  // The operator's routes leave room for one more (Neutron's default max_routes is 30).
  await api.addExtraRoutes(
    t.routerId,
    Array.from({ length: 29 }, (_, i) => ({ destination: `10.99.${i}.0/24`, nexthop: a })),
  );
  const file = join(tmp, `nodes-${t.b}.yaml`);
  await writeFile(
    file,
    `- {node: small-1, nodeIP: ${a}, podCIDR: 10.246.1.0/24}\n- {node: small-2, nodeIP: ${b}, podCIDR: 10.246.2.0/24}\n`,
  );
  const args = await cliArgs(t.b, file, 'small');
  const r = await run(process.execPath, args, { allowFailure: true });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stdout, /NODE +NODE IP +POD SUBNETS +STATE/);
  const refusals = r.stderr.trim().split('\n');
  assert.equal(refusals.length, 1, r.stderr);
  assert.match(
    refusals[0]!,
    /^weft cloud-routes: small-[12] refused: cannot add 1 route\(s\) to router \S+: it has 30 routes and the cloud allows no more .*\(ask the operator to raise max_routes/,
  );
  const routes = await routesOf(t.routerId);
  assert.equal(routes.length, 30);
  assert.equal(routes.filter((x) => x.startsWith('10.246.')).length, 1, 'the other node got its route');

  // --release removes what weft made and nothing else.
  const rel = await run(process.execPath, [...args.slice(0, -1), '--release'], { allowFailure: true });
  assert.equal(rel.code, 0, rel.stderr);
  assert.match(
    rel.stdout,
    /released the routes and pairs of 1 node\(s\)|released the routes and pairs of 2 node\(s\)/,
  );
  assert.deepEqual(
    (await routesOf(t.routerId)).filter((x) => !x.startsWith('10.99.')),
    [],
  );
  assert.equal((await routesOf(t.routerId)).length, 29, "the operator's routes stay");
  assert.deepEqual(await pairsOf(t.ports[a]!), []);
  assert.deepEqual(await pairsOf(t.ports[b]!), []);
});
