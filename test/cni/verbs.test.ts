// weft-cni's verbs against real kernel devices: a node netns running the plugin (as its runtime would)
// and pod netns attached to it. No packet leaves namespaces made here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { run } from '../../src/util/exec.js';
import { CniPluginError } from '../../src/cni/invoke.js';
import {
  call,
  callRaw,
  errorOf,
  httpGet,
  httpServer,
  links,
  makeNetns,
  makeNode,
  routes,
  sh,
  type TestNode,
} from './helpers.js';

interface Result {
  cniVersion: string;
  interfaces: { name: string; mac?: string; sandbox?: string; mtu?: number }[];
  ips: { address: string; gateway?: string; interface?: number; version?: string }[];
  routes: { dst: string; gw?: string }[];
  dns: Record<string, unknown>;
}

async function records(node: TestNode): Promise<string[]> {
  try {
    return (await readdir(`${node.dataDir}/weft`)).filter((f) => /_[0-9a-f]{16}$/.test(f)).sort();
  } catch {
    return [];
  }
}

test('ADD (1.1.0): bridge with the gateway, veth with MTU, address, routes, spec result; pod reaches its gateway', async (t) => {
  const node = await makeNode(t, { mtu: 1400 });
  const [pod] = await makeNetns(t, 'pod');
  const res = (await call(node, 'ADD', pod!)) as unknown as Result;

  assert.equal(res.cniVersion, '1.1.0');
  assert.equal(res.interfaces.length, 3);
  const [br, hostIf, podIf] = res.interfaces;
  assert.equal(br!.name, 'weft0');
  assert.match(hostIf!.name, /^wft[0-9a-f]{12}$/);
  assert.deepEqual(
    { name: podIf!.name, sandbox: podIf!.sandbox, mtu: podIf!.mtu },
    { name: 'eth0', sandbox: `/run/netns/${pod}`, mtu: 1400 },
  );
  assert.equal(res.ips.length, 1);
  assert.match(res.ips[0]!.address, /^10\.244\.1\.\d+\/24$/);
  assert.equal(res.ips[0]!.gateway, '10.244.1.1');
  assert.equal(res.ips[0]!.interface, 2);
  assert.equal(res.ips[0]!.version, undefined);
  assert.deepEqual(res.routes, [
    { dst: '10.244.0.0/16', gw: '10.244.1.1' },
    { dst: '0.0.0.0/0', gw: '10.244.1.1' },
  ]);
  assert.deepEqual(res.dns, {});

  // Kernel state, node side.
  const [bridge] = await links(node.ns, 'weft0');
  assert.equal(bridge!.linkinfo?.info_kind, 'bridge');
  assert.ok(bridge!.flags.includes('UP'));
  assert.deepEqual(
    bridge!.addr_info!.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`),
    ['10.244.1.1/24'],
  );
  assert.equal(bridge!.address, br!.mac);
  const [host] = await links(node.ns, hostIf!.name);
  assert.equal(host!.master, 'weft0');
  assert.equal(host!.mtu, 1400);
  assert.equal(host!.address, hostIf!.mac);
  // Pod side.
  const [eth0] = await links(pod!, 'eth0');
  assert.equal(eth0!.mtu, 1400);
  assert.equal(eth0!.address, podIf!.mac);
  assert.deepEqual(
    eth0!.addr_info!.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`),
    [res.ips[0]!.address],
  );
  const rts = await routes(pod!);
  assert.ok(rts.some((r) => r.dst === 'default' && r.gateway === '10.244.1.1'));
  assert.ok(rts.some((r) => r.dst === '10.244.0.0/16' && r.gateway === '10.244.1.1'));
  // The allocation record.
  const recs = await records(node);
  assert.equal(recs.length, 1);
  assert.ok(recs[0]!.startsWith(res.ips[0]!.address.split('/')[0]! + '_'));
  const rec = JSON.parse(await readFile(`${node.dataDir}/weft/${recs[0]}`, 'utf8')) as Record<string, string>;
  assert.equal(rec.containerId, `ctr-${pod}`);
  assert.equal(rec.ifname, 'eth0');
  // A real round trip: HTTP server on the gateway address in the node, curl from the pod.
  await httpServer(t, node.ns, '10.244.1.1', 8080, 'hello-from-node');
  assert.equal(await httpGet(pod!, '10.244.1.1', 8080), 'hello-from-node');
});

test('result shape per version: 1.0.0 (no iface mtu, no ip version), 0.4.0 and 0.3.1 (ip version "4")', async (t) => {
  const node = await makeNode(t);
  const pods = await makeNetns(t, 'a', 'b', 'c');
  const versions = ['1.0.0', '0.4.0', '0.3.1'];
  for (const [i, v] of versions.entries()) {
    const res = (await call(node, 'ADD', pods[i], {
      config: node.config({ cniVersion: v }),
    })) as unknown as Result;
    assert.equal(res.cniVersion, v);
    assert.equal(res.interfaces[2]!.mtu, undefined, v);
    assert.equal(res.ips[0]!.version, v === '1.0.0' ? undefined : '4', v);
    assert.equal(res.ips[0]!.interface, 2);
  }
  // CHECK exists from 0.4.0 on.
  const prev = await call(node, 'ADD', undefined, {
    config: node.config({ cniVersion: '0.4.0' }),
    containerId: 'c-check',
    netnsPath: `/run/netns/${pods[0]}`,
    ifname: 'net1',
  });
  await call(node, 'CHECK', undefined, {
    config: node.config({ cniVersion: '0.4.0', prevResult: prev }),
    containerId: 'c-check',
    netnsPath: `/run/netns/${pods[0]}`,
    ifname: 'net1',
  });
});

test('CHECK passes after ADD and fails clearly when an address or a route is missing', async (t) => {
  const node = await makeNode(t);
  const [pod] = await makeNetns(t, 'pod');
  const prev = await call(node, 'ADD', pod!);
  const cfg = node.config({ prevResult: prev });
  await call(node, 'CHECK', pod!, { config: cfg });

  await run('ip', ['-n', pod!, 'route', 'del', '10.244.0.0/16']);
  let e = errorOf(await callRaw(node, 'CHECK', pod!, { config: cfg }));
  assert.equal(e.code, 105);
  assert.match(e.msg, /route to 10\.244\.0\.0\/16 via 10\.244\.1\.1 is missing/);

  const addr = (prev as unknown as Result).ips[0]!.address;
  await run('ip', ['-n', pod!, 'addr', 'del', addr, 'dev', 'eth0']);
  e = errorOf(await callRaw(node, 'CHECK', pod!, { config: cfg }));
  assert.match(e.msg, new RegExp(`address ${addr.replace(/\./g, '\\.')} is missing on eth0`));

  await run('ip', ['-n', pod!, 'link', 'del', 'eth0']);
  e = errorOf(await callRaw(node, 'CHECK', pod!, { config: cfg }));
  assert.match(e.msg, /interface eth0 does not exist/);
});

test('DEL releases exactly its allocation and host veth; repeated DEL, DEL without subnet.env and of an unknown container succeed', async (t) => {
  const node = await makeNode(t);
  const [p1, p2] = await makeNetns(t, 'p1', 'p2');
  const r1 = (await call(node, 'ADD', p1!)) as unknown as Result;
  const r2 = (await call(node, 'ADD', p2!)) as unknown as Result;
  assert.notEqual(r1.ips[0]!.address, r2.ips[0]!.address);
  assert.equal((await records(node)).length, 2);

  await call(node, 'DEL', p1!);
  const left = await records(node);
  assert.equal(left.length, 1);
  assert.ok(left[0]!.startsWith(r2.ips[0]!.address.split('/')[0]! + '_'));
  assert.equal((await links(node.ns, r1.interfaces[1]!.name)).length, 0);
  assert.equal((await links(p1!, 'eth0')).length, 0);
  assert.equal((await links(node.ns, r2.interfaces[1]!.name)).length, 1);

  await call(node, 'DEL', p1!); // again
  await rm(node.subnetFile); // the agent is gone
  await call(node, 'DEL', p2!);
  await call(node, 'DEL', undefined, { containerId: 'never-added' });
  assert.deepEqual(await records(node), []);
});

test('DEL after the pod netns was deleted succeeds and frees the address', async (t) => {
  const node = await makeNode(t);
  const [pod] = await makeNetns(t, 'gone');
  const res = (await call(node, 'ADD', pod!)) as unknown as Result;
  await run('ip', ['netns', 'del', pod!]);
  await call(node, 'DEL', pod!);
  assert.deepEqual(await records(node), []);
  assert.equal((await links(node.ns, res.interfaces[1]!.name)).length, 0);
});

test('a /proc/PID/ns/net netns path works for ADD, CHECK and DEL', async (t) => {
  const node = await makeNode(t);
  const holder = spawn('unshare', ['--net', 'sleep', '60'], { stdio: 'ignore' });
  t.after(() => holder.kill('SIGKILL'));
  await new Promise((r) => setTimeout(r, 150));
  const path = `/proc/${holder.pid}/ns/net`;
  const res = (await call(node, 'ADD', undefined, {
    containerId: 'proc-ns',
    netnsPath: path,
  })) as unknown as Result;
  assert.equal(res.interfaces[2]!.sandbox, path);
  const shown = await sh('nsenter', [`--net=${path}`, 'ip', '-j', 'addr', 'show', 'dev', 'eth0']);
  assert.ok(shown.includes(res.ips[0]!.address.split('/')[0]!));
  await call(node, 'CHECK', undefined, {
    containerId: 'proc-ns',
    netnsPath: path,
    config: node.config({ prevResult: res }),
  });
  await call(node, 'DEL', undefined, { containerId: 'proc-ns', netnsPath: path });
  assert.deepEqual(await records(node), []);
});

test('requested addresses: runtimeConfig.ips, args.cni.ips, CNI_ARGS IP; taken or outside the subnet: code 103', async (t) => {
  const node = await makeNode(t);
  const [a, b, c, d] = await makeNetns(t, 'a', 'b', 'c', 'd');
  let res = (await call(node, 'ADD', a!, {
    config: node.config({ runtimeConfig: { ips: ['10.244.1.77/24'], portMappings: [] } }),
  })) as unknown as Result;
  assert.equal(res.ips[0]!.address, '10.244.1.77/24');
  res = (await call(node, 'ADD', b!, {
    config: node.config({ args: { cni: { ips: ['10.244.1.78'] }, labels: { x: 1 } } }),
  })) as unknown as Result;
  assert.equal(res.ips[0]!.address, '10.244.1.78/24');
  res = (await call(node, 'ADD', c!, {
    args: 'IgnoreUnknown=1;IP=10.244.1.79;MAC=02:aa:bb:cc:dd:ee',
  })) as unknown as Result;
  assert.equal(res.ips[0]!.address, '10.244.1.79/24');
  assert.equal(res.interfaces[2]!.mac, '02:aa:bb:cc:dd:ee');
  let e = errorOf(await callRaw(node, 'ADD', d!, { args: 'IP=10.244.1.77' }));
  assert.equal(e.code, 103);
  assert.match(e.msg, /already allocated/);
  e = errorOf(await callRaw(node, 'ADD', d!, { args: 'IP=10.9.9.9' }));
  assert.match(e.msg, /not a usable address/);
  e = errorOf(await callRaw(node, 'ADD', d!, { args: 'IP=10.244.1.1' }));
  assert.match(e.msg, /not a usable address/); // the gateway
  assert.equal((await records(node)).length, 3);
});

test('options: mtu, hairpinMode, runtimeConfig.mac, isDefaultGateway=false, ipMasq, dns', async (t) => {
  const node = await makeNode(t);
  const [pod] = await makeNetns(t, 'pod');
  const res = (await call(node, 'ADD', pod!, {
    config: node.config({
      mtu: 1300,
      hairpinMode: true,
      isDefaultGateway: false,
      ipMasq: true,
      dns: { nameservers: ['10.96.0.10'], search: ['svc.cluster.local'] },
      runtimeConfig: { mac: '02:11:22:33:44:55', bandwidth: { ingressRate: 1 } },
    }),
  })) as unknown as Result;
  const [host] = await links(node.ns, res.interfaces[1]!.name);
  assert.equal(host!.mtu, 1300);
  assert.equal(host!.linkinfo?.info_slave_data?.hairpin, true);
  const [eth0] = await links(pod!, 'eth0');
  assert.equal(eth0!.address, '02:11:22:33:44:55');
  assert.equal(res.interfaces[2]!.mac, '02:11:22:33:44:55');
  const rts = await routes(pod!);
  assert.ok(!rts.some((r) => r.dst === 'default'));
  assert.deepEqual(res.routes, [{ dst: '10.244.0.0/16', gw: '10.244.1.1' }]);
  assert.deepEqual(res.dns, { nameservers: ['10.96.0.10'], search: ['svc.cluster.local'] });
  const nft = await sh('ip', ['netns', 'exec', node.ns, 'nft', 'list', 'table', 'ip', 'weft_cni_weft']);
  assert.match(nft, /ip saddr 10\.244\.1\.0\/24 ip daddr != 10\.244\.0\.0\/16 .*masquerade/);
});

test('ADD when CNI_IFNAME already exists in the pod: code 104, and no address is leaked', async (t) => {
  const node = await makeNode(t);
  const [pod] = await makeNetns(t, 'pod');
  await run('ip', ['-n', pod!, 'link', 'add', 'eth0', 'type', 'bridge']);
  const e = errorOf(await callRaw(node, 'ADD', pod!));
  assert.equal(e.code, 104);
  assert.match(e.msg, /interface eth0 already exists/);
  assert.deepEqual(await records(node), []);
  const left = (await links(node.ns)).filter((l) => l.ifname.startsWith('wft'));
  assert.deepEqual(left, []);
});

test('prevResult is passed through when weft-cni is not first in a chain', async (t) => {
  const node = await makeNode(t);
  const [pod] = await makeNetns(t, 'pod');
  const prevResult = {
    cniVersion: '1.1.0',
    interfaces: [{ name: 'other0', sandbox: `/run/netns/${pod}` }],
    ips: [{ address: '192.168.50.2/24', interface: 0 }],
    routes: [{ dst: '192.168.0.0/16' }],
    dns: { nameservers: ['192.168.50.1'] },
  };
  const res = (await call(node, 'ADD', pod!, { config: node.config({ prevResult }) })) as unknown as Result;
  assert.deepEqual(res.interfaces[0], prevResult.interfaces[0]);
  assert.equal(res.interfaces[3]!.name, 'eth0');
  assert.equal(res.ips[0]!.address, '192.168.50.2/24');
  assert.equal(res.ips[1]!.interface, 3);
  assert.deepEqual(res.routes[0], { dst: '192.168.0.0/16' });
  assert.deepEqual(res.dns, prevResult.dns);
});

test('a crash after allocation or after the host veth leaves nothing DEL or GC cannot reclaim', async (t) => {
  const node = await makeNode(t);
  const [p1, p2] = await makeNetns(t, 'p1', 'p2');
  // Killed after creating the host veth: record and devices exist, DEL removes both.
  const crashed = await callRaw(node, 'ADD', p1!, { env: { WEFT_CNI_FAULT: 'after-host' } });
  assert.notEqual(crashed.exitCode, 0);
  assert.equal((await records(node)).length, 1);
  assert.equal((await links(node.ns)).filter((l) => l.ifname.startsWith('wft')).length, 1);
  await call(node, 'DEL', p1!);
  assert.deepEqual(await records(node), []);
  assert.deepEqual(
    (await links(node.ns)).filter((l) => l.ifname.startsWith('wft')),
    [],
  );
  // Killed right after allocating: a retried ADD of the same attachment reuses the address ...
  await callRaw(node, 'ADD', p2!, { env: { WEFT_CNI_FAULT: 'after-alloc' } });
  const before = await records(node);
  assert.equal(before.length, 1);
  const again = (await call(node, 'ADD', p2!)) as unknown as Result;
  assert.ok(before[0]!.startsWith(again.ips[0]!.address.split('/')[0]! + '_'));
  await call(node, 'DEL', p2!);
  // ... and GC reclaims a crashed ADD that nobody retried.
  await callRaw(node, 'ADD', p2!, { env: { WEFT_CNI_FAULT: 'after-host' } });
  assert.equal((await records(node)).length, 1);
  await call(node, 'GC', undefined, { config: node.config({ 'cni.dev/valid-attachments': [] }) });
  assert.deepEqual(await records(node), []);
  assert.deepEqual(
    (await links(node.ns)).filter((l) => l.ifname.startsWith('wft')),
    [],
  );
});

test('the allocation lock: a dead holder is broken at once, a live one makes ADD wait (code 11 on timeout)', async (t) => {
  const node = await makeNode(t);
  const [p1, p2] = await makeNetns(t, 'p1', 'p2');
  await run('mkdir', ['-p', `${node.dataDir}/weft`]);
  const lock = `${node.dataDir}/weft/lock`;
  // A holder that has exited.
  const dead = spawn('true');
  await new Promise((r) => dead.on('exit', r));
  await writeFile(lock, `${dead.pid} 12345\n`);
  const t0 = Date.now();
  await call(node, 'ADD', p1!);
  assert.ok(Date.now() - t0 < 3000);
  // A live holder: this test process, with its real start time.
  const stat = await readFile('/proc/self/stat', 'utf8');
  const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  await writeFile(lock, `${process.pid} ${start}\n`);
  const e = errorOf(await callRaw(node, 'ADD', p2!, { env: { WEFT_CNI_LOCK_TIMEOUT_MS: '400' } }));
  assert.equal(e.code, 11);
  assert.match(e.msg, new RegExp(`held by pid ${process.pid}`));
  await rm(lock);
  await call(node, 'ADD', p2!);
  assert.equal((await records(node)).length, 2);
});

test('CniPluginError carries the spec error of a failed ADD', async (t) => {
  const node = await makeNode(t);
  await assert.rejects(
    call(node, 'ADD', undefined, { containerId: 'x', netnsPath: '/run/netns/wcni-none' }),
    (e: unknown) => e instanceof CniPluginError && e.code === 4,
  );
});
