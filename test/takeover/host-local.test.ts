import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HostLocalDir } from '../../src/cni/host-local.js';
import { attachmentHash, IpamStore, type AttachmentKey } from '../../src/cni/ipam.js';
import { Cidr, formatIPv4, parseIPv4 } from '../../src/util/ipv4.js';

/**
 * weft-cni's allocation store sharing host-local's directory (issue 14), on a directory laid out as
 * host-local lays it: the store's own picks, records and removals as the plugin makes them.
 */
test("weft-cni's store shares host-local's allocation directory", async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'weft-host-local-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const hl = join(root, 'cbr0');
  const st = new IpamStore(join(root, 'weft'), { hostLocalDir: hl });
  const subnet = Cidr.parse('10.244.7.0/24')!;
  const gw = parseIPv4('10.244.7.1')!;
  // As host-local leaves it: one file per address, "<id>\r\n<ifname>" (or the id alone, older versions).
  mkdirSync(hl);
  writeFileSync(join(hl, '10.244.7.2'), 'pod-a\r\neth0');
  writeFileSync(join(hl, '10.244.7.3'), 'pod-b');
  writeFileSync(join(hl, 'last_reserved_ip.0'), '10.244.7.3');
  writeFileSync(join(hl, 'lock'), '');
  const allocate = (key: AttachmentKey) =>
    st.withLock(() => {
      const used = new Set(st.list().map((a) => a.ip));
      const ip = st.pick(subnet, gw, used, undefined, key);
      return st.write(ip, attachmentHash(key), {
        containerId: key.containerId,
        ifname: key.ifname,
        address: `${formatIPv4(ip)}/24`,
        hostVeth: 'x',
        created: '',
      });
    });

  await t.test("only host-local's address files count as used", () => {
    assert.deepEqual(new HostLocalDir(hl).used().map(formatIPv4).sort(), ['10.244.7.2', '10.244.7.3']);
  });

  await t.test('a pick skips them and reserves the result there in the same format, exclusively', () => {
    const a = allocate({ containerId: 'pod-w', ifname: 'eth0' });
    assert.equal(formatIPv4(a.ip), '10.244.7.4');
    assert.equal(readFileSync(join(hl, '10.244.7.4'), 'utf8'), 'pod-w\r\neth0');
    assert.equal(
      new HostLocalDir(hl).reserve('10.244.7.4', { containerId: 'x', ifname: 'eth0' }),
      false,
      'O_EXCL: nobody else gets it',
    );
  });

  await t.test('a race lost to a host-local ADD moves on to the next address', (tt) => {
    // host-local writes .5 after weft listed its directory: the listing weft saw lacks it.
    const listing = HostLocalDir.prototype.used;
    tt.mock.method(HostLocalDir.prototype, 'used', function (this: HostLocalDir) {
      const seen = listing.call(this);
      writeFileSync(join(hl, '10.244.7.5'), 'pod-late\r\neth0');
      return seen;
    });
    const a = allocate({ containerId: 'pod-v', ifname: 'eth0' });
    assert.equal(formatIPv4(a.ip), '10.244.7.6');
    assert.equal(readFileSync(join(hl, '10.244.7.5'), 'utf8'), 'pod-late\r\neth0', "host-local's file kept");
  });

  await t.test("removing an allocation releases its reservation; an old pod's files go by key", () => {
    const v = st.findByHash(attachmentHash({ containerId: 'pod-v', ifname: 'eth0' }))[0]!;
    st.withLock(() => st.remove(v));
    assert.ok(!readdirSync(hl).includes('10.244.7.6'), "weft's reservation released with its record");
    assert.deepEqual(st.releaseShared({ containerId: 'pod-a', ifname: 'eth0' }), ['10.244.7.2']);
    assert.deepEqual(st.releaseShared({ containerId: 'pod-b', ifname: 'eth0' }), ['10.244.7.3']);
    assert.deepEqual(st.releaseShared({ containerId: 'pod-a', ifname: 'eth0' }), [], 'idempotent');
    assert.deepEqual(
      new IpamStore(join(root, 'other')).releaseShared({ containerId: 'pod-w', ifname: 'eth0' }),
      [],
    );
    assert.deepEqual(readdirSync(hl).sort(), ['10.244.7.4', '10.244.7.5', 'last_reserved_ip.0', 'lock']);
  });

  await t.test('a reservation left by an ADD that died before its record is taken back by its retry', () => {
    writeFileSync(join(hl, '10.244.7.9'), 'pod-x\r\neth0'); // the dead ADD's reservation, no weft record
    const a = allocate({ containerId: 'pod-x', ifname: 'eth0' });
    assert.ok(!readdirSync(hl).includes('10.244.7.9'), 'the stale reservation is gone');
    assert.equal(readFileSync(join(hl, formatIPv4(a.ip)), 'utf8'), 'pod-x\r\neth0');
  });
});
