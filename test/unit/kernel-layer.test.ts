import { test } from 'node:test';
import assert from 'node:assert/strict';
import { groupOps, parseBatch, parseBatchFailures } from '../../src/kernel/batch.js';
import { isExists, isNotFound, isUnreachable } from '../../src/kernel/errors.js';
import { argvIn, netnsName } from '../../src/kernel/exec.js';
import { parseMonitorLine, type KernelEvent } from '../../src/kernel/monitor.js';
import { render, type Op } from '../../src/kernel/ops.js';
import * as rec from './fixtures/kernel-recorded.js';

test('render: every Op is the iproute2 batch line the callers used to write by hand', () => {
  const cases: [Op, string][] = [
    [
      {
        op: 'link-add-veth',
        name: 'veth1',
        mtu: 1450,
        address: '0e:58:0a:f4:01:05',
        peer: { name: 'eth0', mtu: 1450, address: '0a:58:0a:f4:01:05', netns: '/run/netns/p1' },
      },
      'ip link add veth1 mtu 1450 address 0e:58:0a:f4:01:05 type veth peer name eth0 mtu 1450 address 0a:58:0a:f4:01:05 netns /run/netns/p1',
    ],
    [
      { op: 'link-add-bridge', name: 'cni0', address: '0a:58:0a:f4:01:01', mtu: 1450 },
      'ip link add cni0 address 0a:58:0a:f4:01:01 mtu 1450 type bridge',
    ],
    [
      {
        op: 'link-add-vxlan',
        name: 'weft.1',
        address: '02:aa:00:00:00:01',
        mtu: 1450,
        vni: 1,
        local: '198.18.0.11',
        dev: 'eth0',
        port: 8472,
      },
      'ip link add weft.1 address 02:aa:00:00:00:01 mtu 1450 type vxlan id 1 local 198.18.0.11 dev eth0 dstport 8472 nolearning',
    ],
    [
      { op: 'link-add-tun', name: 'weft.udp', multiQueue: true, vnetHdr: true },
      'ip tuntap add dev weft.udp mode tun multi_queue vnet_hdr',
    ],
    [{ op: 'link-set', name: 'veth1', master: 'cni0' }, 'ip link set veth1 master cni0'],
    [{ op: 'link-set', name: 'veth1', up: true }, 'ip link set veth1 up'],
    [{ op: 'link-set', name: 'weft.1', noIpv6LinkLocal: true }, 'ip link set weft.1 addrgenmode none'],
    [{ op: 'link-set', name: 'veth1', hairpin: true }, 'ip link set veth1 type bridge_slave hairpin on'],
    [{ op: 'link-del', name: 'veth1' }, 'ip link del veth1'],
    [{ op: 'link-rename', name: 'flannel.1', to: 'weft.1' }, 'ip link set dev flannel.1 name weft.1'],
    [
      { op: 'addr-replace', dev: 'cni0', cidr: '10.244.1.1/24', broadcast: true },
      'ip addr replace 10.244.1.1/24 broadcast + dev cni0',
    ],
    [{ op: 'addr-del', dev: 'weft.1', cidr: '10.244.9.0/32' }, 'ip addr del 10.244.9.0/32 dev weft.1'],
    [
      {
        op: 'route-replace',
        dst: '10.244.2.0/24',
        via: '10.244.2.0',
        dev: 'weft.1',
        onlink: true,
        proto: 87,
      },
      'ip route replace 10.244.2.0/24 via 10.244.2.0 dev weft.1 onlink proto 87',
    ],
    [
      { op: 'route-replace', dst: '10.244.0.0/16', dev: 'weft.udp', proto: 87 },
      'ip route replace 10.244.0.0/16 dev weft.udp proto 87',
    ],
    [
      { op: 'route-append', dst: 'default', via: '10.244.1.1', dev: 'eth0' },
      'ip route append default via 10.244.1.1 dev eth0',
    ],
    [
      { op: 'route-del', dst: '10.244.3.0/24', via: '198.18.0.13', dev: 'eth0', proto: 87 },
      'ip route del 10.244.3.0/24 via 198.18.0.13 dev eth0 proto 87',
    ],
    [
      { op: 'neigh-replace', ip: '10.244.2.0', lladdr: '02:bb:00:00:00:02', dev: 'weft.1' },
      'ip neigh replace 10.244.2.0 lladdr 02:bb:00:00:00:02 dev weft.1 nud permanent',
    ],
    [{ op: 'neigh-del', ip: '10.244.2.0', dev: 'weft.1' }, 'ip neigh del 10.244.2.0 dev weft.1'],
    [
      { op: 'fdb-replace', mac: '02:bb:00:00:00:02', dev: 'weft.1', dst: '198.18.0.12' },
      'bridge fdb replace 02:bb:00:00:00:02 dev weft.1 dst 198.18.0.12 self permanent',
    ],
    [
      { op: 'fdb-del', mac: '02:bb:00:00:00:02', dev: 'weft.1', dst: '198.18.0.12' },
      'bridge fdb del 02:bb:00:00:00:02 dev weft.1 dst 198.18.0.12 self',
    ],
  ];
  for (const [op, line] of cases) {
    const r = render(op);
    assert.equal(`${r.tool} ${r.line}`, line);
  }
});

test('groupOps: consecutive Ops of one tool share a batch and the order of the whole list is kept', () => {
  const ops: Op[] = [
    { op: 'fdb-replace', mac: '02:bb:00:00:00:02', dev: 'weft.1', dst: '198.18.0.12' },
    { op: 'neigh-replace', ip: '10.244.2.0', lladdr: '02:bb:00:00:00:02', dev: 'weft.1' },
    { op: 'route-replace', dst: '10.244.2.0/24', via: '10.244.2.0', dev: 'weft.1', onlink: true, proto: 87 },
    { op: 'fdb-del', mac: '02:bb:00:00:00:03', dev: 'weft.1', dst: '198.18.0.13' },
  ];
  assert.deepEqual(
    groupOps(ops).map((g) => [g.tool, g.start, g.lines.length]),
    [
      ['bridge', 0, 1],
      ['ip', 1, 2],
      ['bridge', 3, 1],
    ],
  );
});

test('the batch failure parser names each failing line and the kernel answer (recorded ip -batch)', () => {
  const p = parseBatch(rec.IP_BATCH_LINES, { code: rec.IP_BATCH_CODE, stderr: rec.IP_BATCH_STDERR });
  assert.deepEqual(
    p.failures.map((f) => [f.line, f.command.split(' ').slice(0, 3).join(' '), f.message]),
    [
      [2, 'route replace 10.244.2.0/24', 'Nexthop has invalid gateway.'],
      [3, 'route replace 10.244.3.0/24', 'Cannot find device "weft.9"'],
      [4, 'route replace 10.244.4.0/24', 'Nexthop has invalid gateway.'],
      [5, 'route del 10.244.7.0/24', 'RTNETLINK answers: No such process'],
      // `ip neigh` ends the process on a kernel error: charged to it, and the rest is to run again
      [6, 'neigh del 10.244.8.0', 'RTNETLINK answers: No such file or directory'],
    ],
  );
  assert.equal(p.resumeAt, 6, 'line 7 never ran');
  assert.ok(isUnreachable(p.failures[0]!.message));
  assert.ok(isNotFound(p.failures[1]!.message) && isNotFound(p.failures[3]!) && isNotFound(p.failures[4]!));
  assert.ok(!isExists(p.failures[0]!));
});

test('the batch failure parser on a recorded bridge -batch, a clean run and a tool that did not run', () => {
  const fs = parseBatchFailures(
    rec.BRIDGE_BATCH_LINES,
    { code: rec.BRIDGE_BATCH_CODE, stderr: rec.BRIDGE_BATCH_STDERR },
    'bridge',
  );
  assert.deepEqual(
    fs.map((f) => [f.line, f.command, f.message]),
    [
      [2, rec.BRIDGE_BATCH_LINES[1], 'RTNETLINK answers: No such file or directory'],
      [3, rec.BRIDGE_BATCH_LINES[2], 'Cannot find device "weft.9"'],
    ],
  );
  assert.deepEqual(parseBatchFailures(['link set lo up'], { code: 0, stderr: '' }), []);
  assert.deepEqual(
    parseBatchFailures(['link set lo up'], {
      code: 255,
      stderr: 'Cannot open netns "x": No such file or directory\n',
    }),
    [{ line: 0, command: 'ip -batch', message: 'Cannot open netns "x": No such file or directory' }],
  );
});

test('namespaces: a name or /run/netns/NAME runs `ip -n`, any other namespace file nsenter', () => {
  assert.equal(netnsName('/run/netns/p1'), 'p1');
  assert.equal(netnsName('p1'), 'p1');
  assert.equal(netnsName('/proc/42/ns/net'), undefined);
  assert.deepEqual(argvIn('/var/run/netns/p1', 'ip', ['link']).slice(1), ['-n', 'p1', 'link']);
  assert.deepEqual(argvIn('/proc/42/ns/net', 'ip', ['link']).slice(1, 2), ['--net=/proc/42/ns/net']);
  assert.deepEqual(argvIn('n1', 'nft', ['-f', '-']).slice(1, 2), ['--net=/run/netns/n1']);
});

test('kernel events: recorded ip/bridge monitor lines become typed events; others are ignored', () => {
  const ip = rec.IP_MONITOR.split('\n')
    .map((l) => parseMonitorLine(l, 'ip'))
    .filter((e): e is KernelEvent => e !== undefined);
  const kinds = ip.map((e) => e.kind).join(' ');
  assert.equal(
    kinds,
    'link link addr route link neigh route neigh route neigh route route neigh route neigh neigh route',
  );
  assert.deepEqual(ip[3], {
    kind: 'route',
    deleted: false,
    dst: '10.244.1.0',
    dev: 'weft.1',
    protocol: 'kernel',
    table: 'local',
    type: 'local',
    onlink: false,
  });
  assert.deepEqual(ip[13], {
    kind: 'route',
    deleted: true,
    dst: '10.244.3.0/24',
    gateway: '10.244.3.0',
    dev: 'weft.1',
    protocol: '87',
    onlink: true,
  });
  assert.deepEqual(ip[0], { kind: 'link', deleted: false, ifname: 'eth0' });
  assert.deepEqual(ip[15], {
    kind: 'neigh',
    deleted: true,
    dst: '10.244.3.0',
    dev: 'weft.1',
    state: ['FAILED'],
  });
  const br = rec.BRIDGE_MONITOR.split('\n')
    .map((l) => parseMonitorLine(l, 'bridge'))
    .filter((e): e is KernelEvent => e !== undefined);
  assert.deepEqual(br[3], {
    kind: 'fdb',
    deleted: true,
    mac: '02:bb:00:00:00:03',
    dev: 'weft.1',
    dst: '198.18.0.13',
    state: 'permanent',
  });
  assert.equal(parseMonitorLine(rec.MONITOR_OVERFLOW, 'bridge')?.kind, 'lost');
  assert.equal(parseMonitorLine('', 'ip'), undefined);
});
