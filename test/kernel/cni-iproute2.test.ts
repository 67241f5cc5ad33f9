import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { pings } from '../helpers/lab.js';
import { call, links, makeNetns, makeNode, type TestNode } from '../cni/helpers.js';

const records = async (node: TestNode): Promise<string[]> =>
  (await readdir(`${node.dataDir}/weft`).catch(() => [])).filter((f) => /_[0-9a-f]{16}$/.test(f));

/**
 * weft-cni without the netlink addon (WEFT_NETLINK=0: what a machine without a C compiler gets) does
 * the same through iproute2: ADD, CHECK and DEL give the same results and leave the same kernel state
 * as with netlink, side by side on one node.
 */
test('weft-cni through iproute2 (no netlink addon) attaches, checks and detaches pods like with netlink', async (t) => {
  const node = await makeNode(t);
  const [a, b] = await makeNetns(t, 'nl', 'ip');
  const viaIproute2 = { env: { WEFT_NETLINK: '0' } };
  const ra = await call(node, 'ADD', a!);
  const rb = await call(node, 'ADD', b!, viaIproute2);
  // The same but for what differs per pod: its address, MACs (derived from it), veth and namespace.
  const shape = (r: Record<string, unknown>) =>
    JSON.stringify(r)
      .replace(/\d+\.\d+\.\d+\.\d+\/24/g, 'IP')
      .replace(/"mac":"[^"]+"/g, '"mac":M')
      .replace(/wft[0-9a-f]+/g, 'VETH')
      .replace(/"sandbox":"[^"]+"/g, '"sandbox":NS');
  assert.equal(shape(rb), shape(ra));
  for (const [pod, r] of [
    [a!, ra],
    [b!, rb],
  ] as const) {
    await call(node, 'CHECK', pod, { ...viaIproute2, config: node.config({ prevResult: r }) });
    assert.ok(await pings(pod, node.gateway), `${pod} reaches its gateway`);
    const [eth0] = await links(pod, 'eth0');
    assert.equal(eth0?.mtu, (await links(node.ns, (r.interfaces as { name: string }[])[0]!.name))[0]?.mtu);
  }
  const hostB = (rb.interfaces as { name: string }[])[1]!.name;
  await call(node, 'DEL', b!, viaIproute2);
  assert.equal((await links(node.ns, hostB)).length, 0, 'the host veth is gone');
  assert.equal((await links(b!, 'eth0')).length, 0, 'the pod end went with it');
  await call(node, 'DEL', a!);
  assert.deepEqual(await records(node), []);
});
