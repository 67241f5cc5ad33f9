// The Neutron cloud route provider against the real Neutron API (fixture, API-only) and a real etcd.
// Every check reads what a user would see: the router's routes and the port's pairs as Neutron reports
// them, and the error text.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Etcd3 } from 'etcd3';
import { startNeutronAndEtcd, makeSubnet, type TestNeutron } from '../openstack/neutron-fixture.js';
import { NeutronClient } from '../../src/openstack/neutron.js';
import type { AddressPair, Port, Route, Router } from '../../src/openstack/types.js';
import { NeutronRouteProvider, type NeutronProviderOptions } from '../../src/cloud/neutron.js';
import { EtcdOwnershipStore } from '../../src/cloud/ownership.js';
import {
  AllowedAddressPairExhausted,
  CloudExtensionMissing,
  NoCloudRouter,
  NodePortNotFound,
  RoutesExhausted,
  type CloudRoute,
} from '../../src/cloud/provider.js';
import { WeftError } from '../../src/util/errors.js';

let neutron: TestNeutron;
let kv: Etcd3;
let api: NeutronClient; // "the operator": raw API calls outside weft
let seq = 0;

let fixtures: Awaited<ReturnType<typeof startNeutronAndEtcd>> | undefined;
before(async () => {
  fixtures = await startNeutronAndEtcd();
  ({ neutron, kv } = fixtures);
  api = neutron.client;
});
after(async () => {
  await fixtures?.stop();
});

interface Topo {
  routerId: string;
  /** subnet i = 10.<base>.i.0/24 (i = 1..n), all attached to the router */
  subnets: { networkId: string; subnetId: string; cidr: string }[];
  prefix: string;
}

/** A fresh router with n attached subnets, and a fresh etcd prefix (one per test). */
async function topo(n = 3): Promise<Topo> {
  const base = 20 + ++seq;
  const router = await api.createRouter({ name: `r-${base}` });
  const subnets = [];
  for (let i = 1; i <= n; i++) {
    const cidr = `10.${base}.${i}.0/24`;
    subnets.push({ ...(await makeSubnet(api, cidr, { routerId: router.id })), cidr });
  }
  return { routerId: router.id, subnets, prefix: `/weft-test-${base}/network` };
}

/** A node port with fixed IP 10.<base>.<subnet>.<host>. */
async function nodePort(
  t: Topo,
  subnet: number,
  host: number,
  extra: Record<string, unknown> = {},
): Promise<Port> {
  const s = t.subnets[subnet - 1]!;
  const ip = s.cidr.replace(/0\/24$/, String(host));
  return api.createPort({
    network_id: s.networkId,
    device_owner: 'weft:node',
    fixed_ips: [{ subnet_id: s.subnetId, ip_address: ip }],
    ...extra,
  });
}

function provider(t: Topo, port: Port, o: Partial<NeutronProviderOptions> = {}): NeutronRouteProvider {
  return new NeutronRouteProvider({
    client: o.client ?? api,
    store: new EtcdOwnershipStore(kv, t.prefix),
    cluster: 'alpha',
    node: `node-${port.fixed_ips[0]!.ip_address}`,
    publicIp: port.fixed_ips[0]!.ip_address,
    ...o,
  });
}

const routesOf = async (id: string): Promise<string[]> =>
  (await api.getRouter(id)).routes.map((r) => `${r.destination} via ${r.nexthop}`).sort();
const pairsOf = async (id: string): Promise<string[]> =>
  ((await api.getPort(id)).allowed_address_pairs ?? []).map((p) => p.ip_address).sort();
const r = (destination: string, nexthop: string): CloudRoute => ({ destination, nexthop });
const s = (x: CloudRoute) => `${x.destination} via ${x.nexthop}`;

async function oneLine(
  fn: () => Promise<unknown>,
  cls: new (...a: never[]) => WeftError,
  re: RegExp,
): Promise<string> {
  try {
    await fn();
  } catch (e) {
    assert.ok(
      e instanceof cls,
      `expected ${cls.name}, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`,
    );
    const line = e.oneLine();
    assert.doesNotMatch(line, /\n/);
    assert.ok(e.hint, 'names a fix');
    assert.match(line, re);
    return line;
  }
  assert.fail(`expected ${cls.name}`);
}

/** A client that lets "another writer" act right before weft's first write (the race window). */
class RacingClient extends NeutronClient {
  portWrites = 0;
  routerWrites = 0;
  beforePortWrite: (() => Promise<void>) | undefined;
  beforeRouterWrite: (() => Promise<void>) | undefined;
  override async setAllowedAddressPairs(id: string, pairs: AddressPair[], rev?: number): Promise<Port> {
    this.portWrites++;
    const f = this.beforePortWrite;
    this.beforePortWrite = undefined;
    if (f) await f();
    return super.setAllowedAddressPairs(id, pairs, rev);
  }
  override async setRoutes(id: string, routes: Route[], rev?: number): Promise<Router> {
    this.routerWrites++;
    const f = this.beforeRouterWrite;
    this.beforeRouterWrite = undefined;
    if (f) await f();
    return super.setRoutes(id, routes, rev);
  }
}

// ------------------------------------------------------------------------------------ init

test('init finds the port by fixed IP, else by MAC; finds the router and reports capabilities', async () => {
  const t = await topo(3);
  const lonely = await makeSubnet(api, `10.${20 + seq}.9.0/24`); // on no router
  const p1 = await nodePort(t, 1, 11);
  const caps = await provider(t, p1).init();
  assert.equal(caps.node.portId, p1.id);
  assert.equal(caps.node.subnetCidr, t.subnets[0]!.cidr);
  assert.equal(caps.router?.id, t.routerId);
  assert.deepEqual(caps.router?.subnets.map((x) => x.cidr).sort(), t.subnets.map((x) => x.cidr).sort());
  assert.equal(caps.router?.addressOnNodeSubnet, t.subnets[0]!.cidr.replace(/0\/24$/, '1'));
  assert.equal(caps.routes, 'atomic');
  assert.equal(caps.antiSpoofing, 'address-pairs');
  assert.equal(caps.revisionGuard, true);
  assert.deepEqual(caps.extensions, {
    'allowed-address-pairs': true,
    'port-security': true,
    extraroute: true,
    'extraroute-atomic': true,
    'revision-if-match': true,
  });
  assert.equal(caps.node.mtu, 1450);

  const byMac = provider(t, p1, { publicIp: '198.18.200.1', mac: p1.mac_address.toUpperCase() });
  const c2 = await byMac.init();
  assert.equal(c2.node.portId, p1.id);
  assert.match(c2.notes.join(';'), /found port .* by MAC/);
  assert.equal(byMac.classifyPeer(t.subnets[0]!.cidr.replace(/0\/24$/, '77')), 'same-subnet');
  assert.equal(byMac.classifyPeer(t.subnets[2]!.cidr.replace(/0\/24$/, '77')), 'cloud-router');
  assert.equal(byMac.classifyPeer('10.250.0.1'), 'none');

  await oneLine(
    () => provider(t, p1, { publicIp: '198.18.200.2', mac: 'fa:16:3e:ff:ff:ff' }).init(),
    NodePortNotFound,
    /no Neutron port has fixed IP 198\.18\.200\.2 or MAC fa:16:3e:ff:ff:ff \(check the node's public IP/,
  );

  // a node whose subnet no router serves: no cloud routes, and asking for one says why
  const lp = await api.createPort({
    network_id: lonely.networkId,
    device_owner: 'weft:node',
    fixed_ips: [{ subnet_id: lonely.subnetId }],
  });
  const lonelyProv = provider(t, lp);
  const lc = await lonelyProv.init();
  assert.equal(lc.routes, 'unavailable');
  assert.equal(lc.router, undefined);
  await oneLine(
    () => lonelyProv.ensureRoutes([r('10.244.0.0/24', lp.fixed_ips[0]!.ip_address)]),
    NoCloudRouter,
    /no Neutron router has an interface on the node's subnet/,
  );
});

// ------------------------------------------------------------------------------------ address pairs

test('address pairs: add, idempotent, remove; operator pairs untouched, also one with the same CIDR', async () => {
  const t = await topo(1);
  const port = await nodePort(t, 1, 11, {
    allowed_address_pairs: [{ ip_address: '10.99.0.0/24' }, { ip_address: '10.244.50.0/24' }],
  });
  const p = provider(t, port);
  await p.init();
  assert.equal(await p.ensurePodSubnetAllowed('10.244.3.0/24'), 'added');
  assert.deepEqual(await pairsOf(port.id), ['10.244.3.0/24', '10.244.50.0/24', '10.99.0.0/24']);
  assert.equal(await p.ensurePodSubnetAllowed('10.244.3.0/24'), 'present');
  assert.equal((await api.getPort(port.id)).allowed_address_pairs?.length, 3);
  // the operator already has exactly this CIDR: weft leaves it alone and never removes it
  assert.equal(await p.ensurePodSubnetAllowed('10.244.50.0/24'), 'external');
  assert.deepEqual(
    (await p.listOwned()).pairs.map((x) => [x.ipAddress, x.present]),
    [['10.244.3.0/24', true]],
  );
  await p.removePodSubnetAllowed('10.244.50.0/24');
  await p.removePodSubnetAllowed('10.244.3.0/24');
  assert.deepEqual(await pairsOf(port.id), ['10.244.50.0/24', '10.99.0.0/24']);
  assert.deepEqual((await p.listOwned()).pairs, []);
  // an operator pair covering the pod subnet already does the job: nothing added, nothing owned
  await api.setAllowedAddressPairs(port.id, [{ ip_address: '10.244.0.0/16' }]);
  assert.equal(await p.ensurePodSubnetAllowed('10.244.7.0/24'), 'covered');
  assert.deepEqual(await pairsOf(port.id), ['10.244.0.0/16']);
});

test("address pairs: a writer changing the port between weft's read and write loses nothing (If-Match + retry)", async () => {
  const t = await topo(1);
  const port = await nodePort(t, 1, 11);
  const racing = new RacingClient({ endpoint: neutron.url });
  const p = provider(t, port, { client: racing });
  await p.init();
  const operatorAdds = (cidr: string) => async () => {
    const cur = await api.getPort(port.id);
    await api.setAllowedAddressPairs(port.id, [...(cur.allowed_address_pairs ?? []), { ip_address: cidr }]);
  };
  racing.beforePortWrite = operatorAdds('10.77.0.0/24');
  assert.equal(await p.ensurePodSubnetAllowed('10.244.3.0/24'), 'added');
  assert.equal(racing.portWrites, 2, 'the first write hit 412 and was retried on the new revision');
  assert.deepEqual(await pairsOf(port.id), ['10.244.3.0/24', '10.77.0.0/24']);
  racing.beforePortWrite = operatorAdds('10.78.0.0/24');
  await p.removePodSubnetAllowed('10.244.3.0/24');
  assert.deepEqual(await pairsOf(port.id), ['10.77.0.0/24', '10.78.0.0/24']);

  // Control: the same race without the revision guard loses the operator's pair. This is what the
  // guard prevents, and shows that the check above can fail.
  const t2 = await topo(1);
  const port2 = await nodePort(t2, 1, 11);
  const racing2 = new RacingClient({ endpoint: neutron.url });
  const unguarded = provider(t2, port2, { client: racing2, disableExtensions: ['revision-if-match'] });
  await unguarded.init();
  racing2.beforePortWrite = async () => {
    await api.setAllowedAddressPairs(port2.id, [{ ip_address: '10.77.0.0/24' }]);
  };
  await unguarded.ensurePodSubnetAllowed('10.244.3.0/24');
  assert.deepEqual(
    await pairsOf(port2.id),
    ['10.244.3.0/24'],
    'without If-Match the concurrent pair is lost',
  );
});

test('address pairs: the 11th pair gives AllowedAddressPairExhausted, one line, nothing recorded', async () => {
  const t = await topo(1);
  const ten = Array.from({ length: 10 }, (_, i) => ({ ip_address: `10.66.${i}.0/24` }));
  const port = await nodePort(t, 1, 11, { allowed_address_pairs: ten });
  const p = provider(t, port);
  await p.init();
  await oneLine(
    () => p.ensurePodSubnetAllowed('10.244.3.0/24'),
    AllowedAddressPairExhausted,
    /cannot add a pod subnet to port .*: it has 10 allowed address pairs and the cloud allows no more \(The number of allowed address pair exceeds the maximum 10\.\) \(remove pairs nobody uses, ask the operator to raise max_allowed_address_pair/,
  );
  assert.equal((await api.getPort(port.id)).allowed_address_pairs?.length, 10);
  assert.deepEqual((await p.listOwned()).pairs, []);
});

test('port security off: no pair needed; no allowed-address-pairs extension: a clear error', async () => {
  const t = await topo(1);
  const open = await nodePort(t, 1, 11, { port_security_enabled: false });
  const p = provider(t, open);
  assert.equal((await p.init()).antiSpoofing, 'not-needed');
  assert.equal(await p.ensurePodSubnetAllowed('10.244.3.0/24'), 'not-needed');
  assert.deepEqual(await pairsOf(open.id), []);

  const guarded = await nodePort(t, 1, 12);
  const noAap = provider(t, guarded, { disableExtensions: ['allowed-address-pairs'] });
  assert.equal((await noAap.init()).antiSpoofing, 'unavailable');
  await oneLine(
    () => noAap.ensurePodSubnetAllowed('10.244.3.0/24'),
    CloudExtensionMissing,
    /the cloud lacks the Neutron extension "allowed-address-pairs".*\(use the vxlan backend/,
  );
});

// ------------------------------------------------------------------------------------ routes

test('routes (extraroute-atomic): add, idempotent, drift repaired, remove', async () => {
  const t = await topo(2);
  const port = await nodePort(t, 1, 11);
  const ip = port.fixed_ips[0]!.ip_address;
  const p = provider(t, port);
  await p.init();
  assert.deepEqual(await p.ensureRoutes([r('10.244.1.0/24', ip)]), ['added']);
  assert.deepEqual(await routesOf(t.routerId), [`10.244.1.0/24 via ${ip}`]);
  assert.deepEqual(await p.ensureRoutes([r('10.244.1.0/24', ip)]), ['present']);
  // someone deletes weft's route behind its back: listOwned shows it, ensure puts it back
  await api.removeExtraRoutes(t.routerId, [r('10.244.1.0/24', ip)]);
  assert.deepEqual(
    (await p.listOwned()).routes.map((x) => [s(x), x.present]),
    [[`10.244.1.0/24 via ${ip}`, false]],
  );
  assert.deepEqual(await p.ensureRoutes([r('10.244.1.0/24', ip)]), ['added']);
  await p.removeRoutes([r('10.244.1.0/24', ip)]);
  assert.deepEqual(await routesOf(t.routerId), []);
  assert.deepEqual((await p.listOwned()).routes, []);
  await oneLine(
    () => p.ensureRoutes([r('10.244.2.0/24', '10.250.0.9')]),
    NoCloudRouter,
    /next hop 10\.250\.0\.9 of 10\.244\.2\.0\/24 is not on a subnet attached to router/,
  );
});

test('ownership: operator and other-cluster routes survive every weft operation, even to the same destination', async () => {
  const t = await topo(3);
  const p1 = await nodePort(t, 1, 11);
  const p2 = await nodePort(t, 2, 12);
  const ip1 = p1.fixed_ips[0]!.ip_address;
  const ip2 = p2.fixed_ips[0]!.ip_address;
  const opHop = t.subnets[2]!.cidr.replace(/0\/24$/, '99');
  const operator = [r('10.244.1.0/24', opHop), r('172.16.0.0/16', opHop), r('10.244.9.0/24', ip1)];
  await api.addExtraRoutes(t.routerId, operator);
  // another cluster shares the router: its own etcd records, its own node on subnet 2
  const other = provider(t, p2, {
    cluster: 'beta',
    node: 'beta-node',
    store: new EtcdOwnershipStore(kv, '/other-cluster/network'),
  });
  await other.init();
  assert.deepEqual(await other.ensureRoutes([r('10.244.1.0/24', ip2)]), ['added']);
  const foreign = [...operator, r('10.244.1.0/24', ip2)].map(s).sort();

  const weft = provider(t, p1);
  await weft.init();
  // same destination as the operator's and the other cluster's routes; and one identical to an operator route
  assert.deepEqual(await weft.ensureRoutes([r('10.244.1.0/24', ip1), r('10.244.9.0/24', ip1)]), [
    'added',
    'external',
  ]);
  assert.deepEqual(await routesOf(t.routerId), [...foreign, `10.244.1.0/24 via ${ip1}`].sort());
  assert.deepEqual((await weft.listOwned()).routes.map(s), [`10.244.1.0/24 via ${ip1}`]);
  await weft.removeRoutes([
    r('10.244.1.0/24', ip1),
    r('10.244.9.0/24', ip1),
    r('10.244.1.0/24', ip2),
    r('10.244.1.0/24', opHop),
  ]);
  assert.deepEqual(await routesOf(t.routerId), foreign);
  await weft.ensureRoutes([r('10.244.1.0/24', ip1)]);
  await weft.releaseAll();
  await weft.reapNode('beta-node'); // not of this cluster: nothing to reap
  assert.deepEqual(await routesOf(t.routerId), foreign);
  // and the other cluster's removal leaves the operator's routes alone too
  await other.releaseAll();
  assert.deepEqual(await routesOf(t.routerId), operator.map(s).sort());
});

test('ownership is per node: a route two nodes ensured stays until the last owner removes it', async () => {
  const t = await topo(2);
  const p1 = await nodePort(t, 1, 11);
  const p2 = await nodePort(t, 2, 12);
  const ip2 = p2.fixed_ips[0]!.ip_address;
  const a = provider(t, p1);
  const b = provider(t, p2);
  await Promise.all([a.init(), b.init()]);
  const route = r('10.244.2.0/24', ip2);
  await a.ensureRoutes([route]);
  assert.deepEqual(await b.ensureRoutes([route]), ['present']);
  await a.removeRoutes([route]);
  assert.deepEqual(await routesOf(t.routerId), [s(route)]);
  await b.removeRoutes([route]);
  assert.deepEqual(await routesOf(t.routerId), []);
});

async function concurrentAgents(disable: string[]): Promise<void> {
  const t = await topo(3);
  const ports = [await nodePort(t, 1, 11), await nodePort(t, 2, 12), await nodePort(t, 3, 13)];
  const agents = ports.map((p) => provider(t, p, { disableExtensions: disable }));
  const caps = await Promise.all(agents.map((a) => a.init()));
  assert.equal(caps[0]!.routes, disable.includes('extraroute-atomic') ? 'locked-replace' : 'atomic');
  const opHop = t.subnets[0]!.cidr.replace(/0\/24$/, '99');
  await api.addExtraRoutes(t.routerId, [r('192.168.0.0/16', opHop)]);
  // 20 route updates: agent i%3 adds pod subnet 10.244.i.0/24 via its own IP, all at once
  const jobs = Array.from({ length: 20 }, (_, i) => ({
    agent: agents[i % 3]!,
    route: r(`10.244.${i}.0/24`, ports[i % 3]!.fixed_ips[0]!.ip_address),
  }));
  const t0 = Date.now();
  const results = await Promise.all(jobs.map((j) => j.agent.ensureRoutes([j.route])));
  assert.deepEqual(results.flat(), Array(20).fill('added'));
  assert.deepEqual(
    await routesOf(t.routerId),
    [...jobs.map((j) => s(j.route)), `192.168.0.0/16 via ${opHop}`].sort(),
  );
  // and 20 concurrent removals leave only the operator's route
  await Promise.all(jobs.map((j) => j.agent.removeRoutes([j.route])));
  assert.deepEqual(await routesOf(t.routerId), [`192.168.0.0/16 via ${opHop}`]);
  for (const a of agents) assert.deepEqual((await a.listOwned()).routes, []);
  console.log(
    `# 20 concurrent ensures + 20 removals from 3 agents (${disable.join(',') || 'atomic'}): ${Date.now() - t0} ms`,
  );
}

test('20 concurrent route updates from 3 agents, extraroute-atomic: none lost', () => concurrentAgents([]));

test('20 concurrent route updates from 3 agents without extraroute-atomic (lock + revision guard): none lost', () =>
  concurrentAgents(['extraroute-atomic']));

test('without extraroute-atomic, a writer outside weft racing a full-list update loses nothing (If-Match + retry)', async () => {
  const t = await topo(2);
  const port = await nodePort(t, 1, 11);
  const ip = port.fixed_ips[0]!.ip_address;
  const opHop = t.subnets[1]!.cidr.replace(/0\/24$/, '99');
  const racing = new RacingClient({ endpoint: neutron.url });
  const p = provider(t, port, { client: racing, disableExtensions: ['extraroute-atomic'] });
  assert.equal((await p.init()).routes, 'locked-replace');
  racing.beforeRouterWrite = async () => {
    await api.addExtraRoutes(t.routerId, [r('172.16.1.0/24', opHop)]);
  };
  await p.ensureRoutes([r('10.244.1.0/24', ip)]);
  assert.equal(racing.routerWrites, 2, 'the first full-list write hit 412 and was retried');
  assert.deepEqual(await routesOf(t.routerId), [`10.244.1.0/24 via ${ip}`, `172.16.1.0/24 via ${opHop}`]);
  racing.beforeRouterWrite = async () => {
    await api.addExtraRoutes(t.routerId, [r('172.16.2.0/24', opHop)]);
  };
  await p.removeRoutes([r('10.244.1.0/24', ip)]);
  assert.deepEqual(await routesOf(t.routerId), [`172.16.1.0/24 via ${opHop}`, `172.16.2.0/24 via ${opHop}`]);
});

test('a full router gives RoutesExhausted, one line, nothing half-done (atomic and locked paths)', async () => {
  for (const disable of [[], ['extraroute-atomic']]) {
    const t = await topo(2);
    const port = await nodePort(t, 1, 11);
    const ip = port.fixed_ips[0]!.ip_address;
    const opHop = t.subnets[1]!.cidr.replace(/0\/24$/, '99');
    await api.addExtraRoutes(
      t.routerId,
      Array.from({ length: 29 }, (_, i) => r(`172.16.${i}.0/24`, opHop)),
    );
    const p = provider(t, port, { disableExtensions: disable });
    await p.init();
    await oneLine(
      () => p.ensureRoutes([r('10.244.1.0/24', ip), r('10.244.2.0/24', ip)]),
      RoutesExhausted,
      /cannot add 2 route\(s\) to router .*: it has 29 routes and the cloud allows no more \(.*The number of routes exceeds the maximum 30\.\) \(ask the operator to raise max_routes/,
    );
    assert.equal((await api.getRouter(t.routerId)).routes.length, 29);
    assert.deepEqual((await p.listOwned()).routes, []);
    assert.deepEqual(await p.ensureRoutes([r('10.244.1.0/24', ip)]), ['added'], 'the 30th still fits');
  }
});

test('no extraroute extension: routes unavailable, asking for one says which extension is missing', async () => {
  const t = await topo(1);
  const port = await nodePort(t, 1, 11);
  const p = provider(t, port, { disableExtensions: ['extraroute', 'extraroute-atomic'] });
  const caps = await p.init();
  assert.equal(caps.routes, 'unavailable');
  assert.equal(p.classifyPeer(t.subnets[0]!.cidr.replace(/0\/24$/, '50')), 'same-subnet');
  await oneLine(
    () => p.ensureRoutes([r('10.244.1.0/24', port.fixed_ips[0]!.ip_address)]),
    CloudExtensionMissing,
    /lacks the Neutron extension "extraroute"/,
  );
});

// ------------------------------------------------------------------------------------ leaving

test('a node leaving removes its pairs and routes; a dead node is reaped by a peer', async () => {
  const t = await topo(2);
  const p1 = await nodePort(t, 1, 11, { allowed_address_pairs: [{ ip_address: '10.99.0.0/24' }] });
  const p2 = await nodePort(t, 2, 12);
  const [ip1, ip2] = [p1.fixed_ips[0]!.ip_address, p2.fixed_ips[0]!.ip_address];
  const a = provider(t, p1);
  const b = provider(t, p2);
  await Promise.all([a.init(), b.init()]);
  await a.ensurePodSubnetAllowed('10.244.1.0/24');
  await a.ensureRoutes([r('10.244.1.0/24', ip1)]);
  await b.ensurePodSubnetAllowed('10.244.2.0/24');
  await b.ensureRoutes([r('10.244.2.0/24', ip2)]);
  assert.deepEqual(await routesOf(t.routerId), [`10.244.1.0/24 via ${ip1}`, `10.244.2.0/24 via ${ip2}`]);

  await a.releaseAll();
  assert.deepEqual(await routesOf(t.routerId), [`10.244.2.0/24 via ${ip2}`]);
  assert.deepEqual(await pairsOf(p1.id), ['10.99.0.0/24'], 'the operator pair stays');
  assert.deepEqual(await a.listOwned(), { routes: [], pairs: [] });

  // b dies without cleaning up; a (still a member) reaps it when b's lease expires
  await a.init();
  await a.reapNode(`node-${ip2}`);
  assert.deepEqual(await routesOf(t.routerId), []);
  assert.deepEqual(await pairsOf(p2.id), []);
  assert.deepEqual(await kv.getAll().prefix(`${t.prefix}/cloud/`).keys(), []);
});
