// 50 ADDs at once on one node: 50 distinct addresses (the allocation lock holds), every pod reaches its
// gateway, and 50 parallel DELs leave nothing behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { call, httpGet, httpServer, links, makeNetns, makeNode, pool } from './helpers.js';

const N = 50;

test(`${N} parallel ADDs get ${N} distinct addresses, all pods reach the gateway; parallel DELs clean up`, async (t) => {
  const node = await makeNode(t);
  const pods = await makeNetns(t, ...Array.from({ length: N }, (_, i) => `p${i}`));
  const results = await Promise.all(pods.map((p) => call(node, 'ADD', p)));
  const addrs = results.map((r) => (r as { ips: { address: string }[] }).ips[0]!.address);
  assert.equal(new Set(addrs).size, N, `duplicates in ${addrs.join(' ')}`);
  for (const a of addrs) {
    assert.match(a, /^10\.244\.1\.\d+\/24$/);
    assert.notEqual(a, '10.244.1.1/24');
    assert.notEqual(a, '10.244.1.0/24');
    assert.notEqual(a, '10.244.1.255/24');
  }
  // Every pod has its own address on eth0 (the kernel agrees with the results).
  const onPods = await pool(pods, 10, async (p) =>
    (await links(p, 'eth0'))[0]?.addr_info?.find((x) => x.family === 'inet'),
  );
  assert.deepEqual(
    onPods.map((a) => `${a?.local}/${a?.prefixlen}`),
    addrs,
  );
  // Every pod reaches the gateway (HTTP round trip to a server on the bridge address).
  await httpServer(t, node.ns, node.gateway, 8080, 'gw');
  const answers = await pool(pods, 10, (p) => httpGet(p, node.gateway, 8080));
  const failed = pods.filter((_, i) => answers[i] !== 'gw');
  assert.deepEqual(failed, [], 'pods that could not reach the gateway');

  await Promise.all(pods.map((p) => call(node, 'DEL', p)));
  const left = (await readdir(`${node.dataDir}/weft`)).filter((f) => /_[0-9a-f]{16}$/.test(f));
  assert.deepEqual(left, []);
  assert.deepEqual(
    (await links(node.ns)).filter((l) => l.ifname.startsWith('wft')).map((l) => l.ifname),
    [],
  );
});
