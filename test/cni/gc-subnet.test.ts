// GC with a partial cni.dev/valid-attachments list, and a node whose lease (subnet.env) changed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, unlink } from 'node:fs/promises';
import { run } from '../../src/util/exec.js';
import {
  call,
  callRaw,
  errorOf,
  httpGet,
  httpServer,
  links,
  makeNetns,
  makeNode,
  writeSubnet,
  type TestNode,
} from './helpers.js';

async function recordNames(node: TestNode): Promise<string[]> {
  return (await readdir(`${node.dataDir}/weft`)).filter((f) => /_[0-9a-f]{16}$/.test(f)).sort();
}
async function hostVeths(node: TestNode): Promise<string[]> {
  return (await links(node.ns))
    .map((l) => l.ifname)
    .filter((n) => n.startsWith('wft'))
    .sort();
}

test('GC frees exactly the attachments missing from cni.dev/valid-attachments, and their host veths', async (t) => {
  const node = await makeNode(t);
  const pods = await makeNetns(t, 'p0', 'p1', 'p2', 'p3', 'p4');
  const res = await Promise.all(pods.map((p) => call(node, 'ADD', p)));
  const veth = (i: number) => (res[i] as { interfaces: { name: string }[] }).interfaces[1]!.name;
  const addr = (i: number) => (res[i] as { ips: { address: string }[] }).ips[0]!.address.split('/')[0]!;
  // p4: a DEL that got half-way (record gone, host veth still on the bridge).
  const rec4 = (await recordNames(node)).find((f) => f.startsWith(addr(4) + '_'))!;
  await unlink(`${node.dataDir}/weft/${rec4}`);

  const valid = [0, 2].map((i) => ({ containerID: `ctr-${pods[i]}`, ifname: 'eth0' }));
  // GC needs 1.1.0.
  assert.equal(
    errorOf(
      await callRaw(node, 'GC', undefined, {
        config: node.config({ cniVersion: '1.0.0', 'cni.dev/valid-attachments': valid }),
      }),
    ).code,
    1,
  );
  await call(node, 'GC', undefined, { config: node.config({ 'cni.dev/valid-attachments': valid }) });

  const left = await recordNames(node);
  assert.deepEqual(
    left.map((f) => f.split('_')[0]),
    [addr(0), addr(2)].sort(),
  );
  assert.deepEqual(await hostVeths(node), [veth(0), veth(2)].sort());
  // The valid pods are untouched; the others lost their interface with the host end.
  assert.equal((await links(pods[0]!, 'eth0')).length, 1);
  assert.equal((await links(pods[2]!, 'eth0')).length, 1);
  for (const i of [1, 3, 4]) assert.equal((await links(pods[i]!, 'eth0')).length, 0, `pod ${i}`);
  // A second GC with the same list changes nothing; an ADD afterwards still gets a fresh address.
  await call(node, 'GC', undefined, { config: node.config({ 'cni.dev/valid-attachments': valid }) });
  assert.equal((await recordNames(node)).length, 2);
});

test('a changed lease re-addresses the bridge instead of failing, says so, and drops allocations of gone pods', async (t) => {
  const node = await makeNode(t, { subnet: '10.244.1.1/24' });
  const [old1, old2, fresh] = await makeNetns(t, 'old1', 'old2', 'new');
  await call(node, 'ADD', old1!);
  await call(node, 'ADD', old2!);
  assert.equal((await recordNames(node)).length, 2);
  // The node gets a new lease; one old pod is gone meanwhile, the other still exists.
  await writeSubnet(node.subnetFile, '10.244.7.1/24');
  await run('ip', ['netns', 'del', old1!]);

  const out = await callRaw(node, 'ADD', fresh!);
  assert.equal(out.exitCode, 0, out.stdout);
  assert.match(
    out.stderr,
    /bridge weft0 had 10\.244\.1\.1\/24, but the node's subnet is now 10\.244\.7\.0\/24.*re-addressed it to 10\.244\.7\.1\/24/,
  );
  assert.match(out.stderr, /dropped 1 allocation/);
  const res = JSON.parse(out.stdout) as { ips: { address: string; gateway: string }[] };
  assert.match(res.ips[0]!.address, /^10\.244\.7\.\d+\/24$/);
  assert.equal(res.ips[0]!.gateway, '10.244.7.1');
  const [br] = await links(node.ns, 'weft0');
  assert.deepEqual(
    br!.addr_info!.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`),
    ['10.244.7.1/24'],
  );
  // old1's allocation (pod gone) was dropped; old2's (pod still there) stays until its DEL.
  const recs = await recordNames(node);
  assert.equal(recs.length, 2);
  assert.equal(recs.filter((f) => f.startsWith('10.244.1.')).length, 1);
  await httpServer(t, node.ns, '10.244.7.1', 8081, 'new-gw');
  assert.equal(await httpGet(fresh!, '10.244.7.1', 8081), 'new-gw');
  await call(node, 'DEL', old2!);
  assert.deepEqual(
    (await recordNames(node)).map((f) => f.split('.').slice(0, 3).join('.')),
    ['10.244.7'],
  );
});

test("a bridge deleted behind weft-cni's back is re-created by the next ADD", async (t) => {
  const node = await makeNode(t);
  const [p1, p2] = await makeNetns(t, 'p1', 'p2');
  await call(node, 'ADD', p1!);
  await run('ip', ['-n', node.ns, 'link', 'del', 'weft0']);
  await call(node, 'ADD', p2!);
  const [br] = await links(node.ns, 'weft0');
  assert.ok(br!.flags.includes('UP'));
  assert.deepEqual(
    br!.addr_info!.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`),
    ['10.244.1.1/24'],
  );
  await httpServer(t, node.ns, '10.244.1.1', 8082, 'back');
  assert.equal(await httpGet(p2!, '10.244.1.1', 8082), 'back');
});
