import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Plan } from '../../src/backend/types.js';
import { parseNetworkConfig } from '../../src/config/network-config.js';
import { effectiveMode } from '../../src/config/fast-path-mode.js';
import { fastPathPlan, syncScript } from '../../src/fastpath/plan.js';
import { ConfigError } from '../../src/util/errors.js';
import { Cidr, parseIPv4 } from '../../src/util/ipv4.js';

const cidr = (s: string) => Cidr.parse(s)!;
const ip = (s: string) => parseIPv4(s)!;
const node = (vxlanDev: string | undefined) => ({
  subnet: cidr('10.244.1.0/24'),
  underlay: 'eth0',
  ...(vxlanDev && { vxlan: { dev: vxlanDev, vni: 1, port: 8472, local: '198.18.0.11' } }),
});

// What `auto` plans for one on-link peer (direct route) and one behind a router (VXLAN).
const mixed: Plan = {
  routes: [
    { dst: cidr('10.244.3.0/24'), via: ip('10.244.3.0'), dev: 'weft.1', onlink: true },
    { dst: cidr('10.244.2.0/24'), via: ip('198.18.0.12'), dev: 'eth0', onlink: false },
  ],
  vteps: [{ neighIP: ip('10.244.3.0'), mac: '02:aa:bb:cc:dd:03', remote: ip('198.18.1.13') }],
  peers: [],
};

test('a VXLAN peer is encapsulated to its VTEP MAC and address out of the underlay; a direct one is routed to its node', () => {
  const p = fastPathPlan(mixed, node('weft.1'));
  assert.deepEqual(p.peers, [
    'peer 10.244.2.0/24 routed eth0 198.18.0.12',
    'peer 10.244.3.0/24 vxlan eth0 02:aa:bb:cc:dd:03 198.18.1.13',
  ]);
  assert.deepEqual(p.netDevs, ['weft.1', 'eth0'], 'both devices receive peers’ pod traffic');
  const s = syncScript('/x/fastpath.bpf.o', node('weft.1'), p);
  assert.equal(s[2], 'vxlan weft.1 1 8472 198.18.0.11', 'the endpoint before the peers that use it');
});

test('vxlan: the program sits on the VXLAN device and the underlay (it decapsulates there), even before the first peer', () => {
  assert.deepEqual(fastPathPlan({ routes: [], vteps: [], peers: [] }, node('weft.1')).netDevs, [
    'weft.1',
    'eth0',
  ]);
});

test('host-gw: only the underlay carries the program', () => {
  const p = fastPathPlan(
    {
      routes: [{ dst: cidr('10.244.2.0/24'), via: ip('198.18.0.12'), dev: 'eth0', onlink: false }],
      vteps: [],
      peers: [],
    },
    node(undefined),
  );
  assert.deepEqual(p.peers, ['peer 10.244.2.0/24 routed eth0 198.18.0.12']);
  assert.deepEqual(p.netDevs, ['eth0']);
});

test('a VXLAN route without its VTEP (no MAC to address) is left to the stack', () => {
  const p = fastPathPlan(
    {
      routes: [{ dst: cidr('10.244.4.0/24'), via: ip('10.244.4.0'), dev: 'weft.1', onlink: true }],
      vteps: [],
      peers: [],
    },
    node('weft.1'),
  );
  assert.deepEqual(p.peers, []);
});

test('udp: its device route into the TUN device has no next hop: no peer entry, the stack sends it', () => {
  const p = fastPathPlan(
    { routes: [{ dst: cidr('10.244.0.0/16'), dev: 'weft.udp', onlink: false }], vteps: [], peers: [] },
    node(undefined),
  );
  assert.deepEqual([p.peers, p.netDevs], [[], ['eth0']]);
});

test('one loader script for the whole peer table: load, subnet, every peer, then devices and pods', () => {
  const routes = Array.from({ length: 1000 }, (_, i) => ({
    dst: cidr(`10.${100 + (i >> 8)}.${i & 255}.0/24`),
    via: ip(`198.${18 + (i >> 8)}.${i & 255}.1`),
    dev: 'eth0',
    onlink: false,
  }));
  const s = syncScript(
    '/x/fastpath.bpf.o',
    node(undefined),
    fastPathPlan({ routes, vteps: [], peers: [] }, node(undefined)),
  );
  assert.equal(s[0], 'load /x/fastpath.bpf.o');
  assert.equal(s[1], 'subnet 10.244.1.0/24');
  assert.equal(s[2], 'vxlan off', 'no VXLAN endpoint: nothing is decapsulated');
  assert.equal(s.filter((l) => l.startsWith('peer ')).length, 1000);
  assert.deepEqual(s.slice(-3), ['peers-end', 'net-devs eth0', 'pods-sync']);
});

test('FastPath in the network config: none, bpf or auto; the agent flag wins; off by default', () => {
  const c = (extra: string) => parseNetworkConfig(`{"Network":"10.244.0.0/16"${extra}}`);
  assert.equal(c('').fastPath, undefined);
  assert.equal(c(',"FastPath":"bpf"').fastPath, 'bpf');
  assert.equal(c(',"fastpath":"auto"').fastPath, 'auto');
  assert.throws(
    () => c(',"FastPath":"xdp"'),
    (e: unknown) => e instanceof ConfigError && /FastPath: unknown fast path "xdp"/.test(e.message),
  );
  assert.equal(effectiveMode(undefined, undefined), 'none');
  assert.equal(effectiveMode(undefined, 'bpf'), 'bpf');
  assert.equal(effectiveMode('none', 'bpf'), 'none');
});
