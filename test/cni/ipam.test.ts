// Pure logic of weft-cni: the allocation store (in a temp dir), its lock, CNI_ARGS and result shapes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { attachmentHash, hostVethName, IpamStore, FileLock } from '../../src/cni/ipam.js';
import { parseCniArgs, compareVersions } from '../../src/cni/config.js';
import { formatResult } from '../../src/cni/plugin.js';
import { CniError } from '../../src/cni/errors.js';
import { Cidr, formatIPv4, parseIPv4 } from '../../src/util/ipv4.js';

async function tmpStore(t: { after: (fn: () => Promise<void>) => void }): Promise<IpamStore> {
  const dir = await mkdtemp('/tmp/wcni-ipam-');
  t.after(() => rm(dir, { recursive: true, force: true }));
  return new IpamStore(`${dir}/net`);
}

test('pick never hands out network, gateway or broadcast, goes round-robin, and says when the pool is empty', async (t) => {
  const st = await tmpStore(t);
  const subnet = Cidr.parse('10.0.0.0/29')!; // .0 network, .1 gateway, .7 broadcast: .2-.6 usable
  const gw = parseIPv4('10.0.0.1')!;
  const got: string[] = [];
  st.withLock(() => {
    const used = new Set<number>();
    for (let i = 0; i < 5; i++) {
      const ip = st.pick(subnet, gw, used);
      used.add(ip);
      st.write(ip, attachmentHash({ containerId: `c${i}`, ifname: 'eth0' }), {
        containerId: `c${i}`,
        ifname: 'eth0',
        address: `${formatIPv4(ip)}/29`,
        hostVeth: 'x',
        created: '',
      });
      got.push(formatIPv4(ip));
    }
    assert.throws(
      () => st.pick(subnet, gw, used),
      (e: unknown) => e instanceof CniError && e.code === 103 && /no free address/.test(e.message),
    );
    // After a release, the next pick starts after the last one handed out (no immediate reuse of .2).
    used.delete(parseIPv4('10.0.0.2')!);
    used.delete(parseIPv4('10.0.0.4')!);
    assert.equal(formatIPv4(st.pick(subnet, gw, used)), '10.0.0.2');
  });
  assert.deepEqual(got, ['10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6']);
  assert.equal(st.list().length, 5);
  const h = attachmentHash({ containerId: 'c3', ifname: 'eth0' });
  assert.equal(st.findByHash(h).length, 1);
  assert.equal(st.read(st.findByHash(h)[0]!)?.containerId, 'c3');
  // The store refuses changes without its lock.
  assert.throws(() => st.remove(st.list()[0]!), /without its lock/);
});

test('attachment hash: stable, distinct per (containerID, ifname); host veth names fit IFNAMSIZ', () => {
  const a = attachmentHash({ containerId: 'abc', ifname: 'eth0' });
  assert.equal(a, attachmentHash({ containerId: 'abc', ifname: 'eth0' }));
  assert.notEqual(a, attachmentHash({ containerId: 'abc', ifname: 'eth1' }));
  assert.notEqual(a, attachmentHash({ containerId: 'abce', ifname: 'th0' }));
  assert.match(a, /^[0-9a-f]{16}$/);
  assert.ok(hostVethName(a).length <= 15);
});

test('FileLock: a lock of a dead process is broken; a live holder blocks until timeout (code 11)', async (t) => {
  const dir = await mkdtemp('/tmp/wcni-lock-');
  t.after(() => rm(dir, { recursive: true, force: true }));
  const child = spawn('true');
  await new Promise((r) => child.on('exit', r));
  await writeFile(`${dir}/lock`, `${child.pid} 1\n`);
  const l = new FileLock(`${dir}/lock`, 500);
  l.acquire();
  l.release();
  // Held by ourselves in another FileLock: a live holder.
  const holder = new FileLock(`${dir}/lock`, 500);
  holder.acquire();
  const waiter = new FileLock(`${dir}/lock`, 100);
  assert.throws(
    () => waiter.acquire(),
    (e: unknown) => e instanceof CniError && e.code === 11,
  );
  holder.release();
  waiter.acquire();
  waiter.release();
});

test('CNI_ARGS parsing and version comparison', () => {
  assert.deepEqual(
    [...parseCniArgs('IgnoreUnknown=1;K8S_POD_NAME=web;X=1').entries()],
    [
      ['IgnoreUnknown', '1'],
      ['K8S_POD_NAME', 'web'],
      ['X', '1'],
    ],
  );
  assert.throws(() => parseCniArgs('X=1'), /unknown args \[X\]/);
  assert.throws(() => parseCniArgs('=1'), /invalid pair/);
  assert.ok(compareVersions('1.1.0', '1.0.0') > 0);
  assert.ok(compareVersions('0.4.0', '1.0.0') < 0);
  assert.equal(compareVersions('1.0.0', '1.0.0'), 0);
});

test('formatResult: per-version shapes', () => {
  const r = {
    cniVersion: '1.1.0',
    interfaces: [{ name: 'eth0', mac: '0a:58:0a:00:00:02', sandbox: '/run/netns/x', mtu: 1450 }],
    ips: [{ address: '10.0.0.2/24', gateway: '10.0.0.1', interface: 0 }],
    routes: [{ dst: '0.0.0.0/0', gw: '10.0.0.1' }],
    dns: {},
  };
  const v11 = formatResult(r, '1.1.0') as { interfaces: { mtu?: number }[]; ips: { version?: string }[] };
  assert.equal(v11.interfaces[0]!.mtu, 1450);
  assert.equal(v11.ips[0]!.version, undefined);
  const v10 = formatResult(r, '1.0.0') as typeof v11;
  assert.equal(v10.interfaces[0]!.mtu, undefined);
  const v04 = formatResult(r, '0.4.0') as typeof v11;
  assert.equal(v04.ips[0]!.version, '4');
});
