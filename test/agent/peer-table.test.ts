import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PeerTable, type OwnIdentity } from '../../src/agent/peer-table.js';
import type { Lease } from '../../src/store/lease.js';
import { Cidr } from '../../src/util/ipv4.js';

/** The peer table is pure: listings and watch events in, the table and what they meant out. */
const PREFIX = '/coreos.com/network';
const cidr = (s: string) => Cidr.parse(s)!;
const lease = (subnet: string, ip: string, rev = '5'): Lease => ({
  subnet: cidr(subnet),
  attrs: { PublicIP: ip, PublicIPv6: null, BackendType: 'host-gw' },
  leaseId: '7',
  modRevision: rev,
});
const key = (subnet: string) => `${PREFIX}/subnets/${cidr(subnet).toKey()}`;
const me: OwnIdentity = { subnet: cidr('10.244.1.0/24'), publicIP: '198.18.0.11' };
const subnets = (t: PeerTable) =>
  t
    .leases()
    .map((l) => l.subnet.toString())
    .sort();

test('a listing fills the table with the peers, not this node, and says whether this node was in it', () => {
  const t = new PeerTable(PREFIX);
  const r = t.replace(
    {
      leases: [lease('10.244.1.0/24', '198.18.0.11'), lease('10.244.2.0/24', '198.18.0.12')],
      corrupt: [],
    },
    me,
  );
  assert.equal(r.ownSeen, true);
  assert.deepEqual(subnets(t), ['10.244.2.0/24']);
  const again = t.replace({ leases: [lease('10.244.3.0/24', '198.18.0.13')], corrupt: [] }, me);
  assert.equal(again.ownSeen, false, 'our lease is missing from the store');
  assert.deepEqual(subnets(t), ['10.244.3.0/24'], 'a listing replaces everything');
});

test('before this node holds a subnet, every lease is a peer', () => {
  const t = new PeerTable(PREFIX);
  const r = t.replace(
    { leases: [lease('10.244.1.0/24', '198.18.0.11')], corrupt: [] },
    { ...me, subnet: undefined },
  );
  assert.equal(r.ownSeen, false);
  assert.equal(t.size, 1);
});

test('watch events: a peer added, changed and removed; the one removed is reported as departed', () => {
  const t = new PeerTable(PREFIX);
  t.replace({ leases: [], corrupt: [] }, me);
  let c = t.apply([{ type: 'put', lease: lease('10.244.2.0/24', '198.18.0.12') }], me);
  assert.deepEqual(c, { own: [], departed: [], newlyCorrupt: [] });
  c = t.apply([{ type: 'put', lease: lease('10.244.2.0/24', '198.18.0.22', '9') }], me);
  assert.equal(t.leases()[0]!.attrs.PublicIP, '198.18.0.22', 'the newer lease replaces the older');
  assert.equal(t.hasPublicIP('198.18.0.22'), true);
  assert.equal(t.hasPublicIP('198.18.0.12'), false);
  c = t.apply([{ type: 'delete', subnet: cidr('10.244.2.0/24'), key: key('10.244.2.0/24') }], me);
  assert.deepEqual(
    c.departed.map((l) => l.attrs.PublicIP),
    ['198.18.0.22'],
  );
  assert.equal(t.size, 0);
  c = t.apply([{ type: 'delete', subnet: cidr('10.244.9.0/24'), key: key('10.244.9.0/24') }], me);
  assert.deepEqual(c.departed, [], 'deleting an unknown lease is no departure');
});

test("this node's own lease: deleted, taken by another node, or rewritten by us, in order", () => {
  const t = new PeerTable(PREFIX);
  t.replace({ leases: [], corrupt: [] }, me);
  const ours = lease('10.244.1.0/24', '198.18.0.11', '12');
  const c = t.apply(
    [
      { type: 'delete', subnet: cidr('10.244.1.0/24'), key: key('10.244.1.0/24') },
      { type: 'put', lease: ours },
      { type: 'put', lease: lease('10.244.1.0/24', '198.18.0.99') },
    ],
    me,
  );
  assert.deepEqual(c.own, [
    { kind: 'deleted' },
    { kind: 'updated', lease: ours },
    { kind: 'taken', by: '198.18.0.99' },
  ]);
  assert.equal(t.size, 0, 'our subnet never becomes a peer, even when another node writes it');
});

test('corrupt leases: skipped, reported once per reason, dropped from the peers, cleared when fixed', () => {
  const t = new PeerTable(PREFIX);
  const r = t.replace(
    {
      leases: [lease('10.244.2.0/24', '198.18.0.12')],
      corrupt: [{ key: key('10.244.3.0/24'), reason: 'value is not JSON' }],
    },
    me,
  );
  assert.deepEqual(r.newlyCorrupt, [{ key: key('10.244.3.0/24'), reason: 'value is not JSON' }]);
  const bad = { key: key('10.244.2.0/24'), reason: 'PublicIP is missing' };
  let c = t.apply([{ type: 'corrupt', entry: bad }], me);
  assert.deepEqual(c.newlyCorrupt, [bad]);
  assert.equal(t.size, 0, 'a peer whose lease turned corrupt is no longer routed to');
  c = t.apply([{ type: 'corrupt', entry: bad }], me);
  assert.deepEqual(c.newlyCorrupt, [], 'the same reason again is not news');
  c = t.apply([{ type: 'corrupt', entry: { ...bad, reason: 'value is not a JSON object' } }], me);
  assert.equal(c.newlyCorrupt.length, 1, 'a new reason is');
  assert.equal(t.corruptCount, 2);
  t.apply([{ type: 'put', lease: lease('10.244.2.0/24', '198.18.0.12') }], me);
  t.apply([{ type: 'delete', subnet: cidr('10.244.3.0/24'), key: key('10.244.3.0/24') }], me);
  assert.deepEqual(t.corruptEntries(), [], 'a valid rewrite or a delete clears the entry');
  assert.equal(t.size, 1);
});

test('forget drops a peer entry for the subnet this node now holds', () => {
  const t = new PeerTable(PREFIX);
  t.replace({ leases: [lease('10.244.5.0/24', '198.18.0.15')], corrupt: [] }, me);
  t.forget(cidr('10.244.5.0/24'));
  assert.equal(t.size, 0);
});
