import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  hostLocalUsed,
  pickBesideHostLocal,
  releaseHostLocal,
  reserveHostLocal,
} from '../../src/cni/host-local.js';
import { formatIPv4, parseIPv4 } from '../../src/util/ipv4.js';

/** weft-cni beside host-local's allocation files (issue 14), on a directory laid out as host-local lays it. */
test("weft-cni shares host-local's allocation directory", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-host-local-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // As host-local leaves it: one file per address, "<id>\r\n<ifname>" (or the id alone, older versions).
  writeFileSync(join(dir, '10.244.7.2'), 'pod-a\r\neth0');
  writeFileSync(join(dir, '10.244.7.3'), 'pod-b');
  writeFileSync(join(dir, 'last_reserved_ip.0'), '10.244.7.3');
  writeFileSync(join(dir, 'lock'), '');
  const ip = (s: string) => parseIPv4(s)!;

  await t.test('its files are taken as used; nothing else in the directory is', () => {
    assert.deepEqual(hostLocalUsed(dir).map(formatIPv4).sort(), ['10.244.7.2', '10.244.7.3']);
  });

  await t.test('a pick skips them and reserves the result in the same format, exclusively', () => {
    let next = ip('10.244.7.2');
    const used = new Set<number>();
    const pick = () => {
      while (used.has(next)) next++;
      return next;
    };
    const got = pickBesideHostLocal(dir, used, { containerId: 'pod-w', ifname: 'eth0' }, pick, formatIPv4);
    assert.equal(formatIPv4(got), '10.244.7.4');
    assert.equal(readFileSync(join(dir, '10.244.7.4'), 'utf8'), 'pod-w\r\neth0');
    assert.equal(reserveHostLocal(dir, '10.244.7.4', { containerId: 'x', ifname: 'eth0' }), false, 'O_EXCL');
  });

  await t.test('a race lost to host-local moves on to the next address', () => {
    let calls = 0;
    const used = new Set<number>();
    const pick = () => {
      calls++;
      // The first answer is taken by host-local between our read and our create.
      if (calls === 1) {
        writeFileSync(join(dir, '10.244.7.9'), 'pod-late\r\neth0');
        return ip('10.244.7.9');
      }
      return used.has(ip('10.244.7.9')) ? ip('10.244.7.10') : ip('10.244.7.9');
    };
    const got = pickBesideHostLocal(dir, used, { containerId: 'pod-v', ifname: 'eth0' }, pick, formatIPv4);
    assert.equal(formatIPv4(got), '10.244.7.10');
    assert.equal(readFileSync(join(dir, '10.244.7.9'), 'utf8'), 'pod-late\r\neth0', "host-local's file kept");
  });

  await t.test('release removes exactly the attachment’s files, in either format', () => {
    assert.deepEqual(releaseHostLocal(dir, { containerId: 'pod-a', ifname: 'eth0' }), ['10.244.7.2']);
    assert.deepEqual(releaseHostLocal(dir, { containerId: 'pod-b', ifname: 'eth0' }), ['10.244.7.3']);
    assert.deepEqual(releaseHostLocal(dir, { containerId: 'pod-a', ifname: 'eth0' }), [], 'idempotent');
    assert.deepEqual(releaseHostLocal(undefined, { containerId: 'pod-w', ifname: 'eth0' }), []);
    assert.deepEqual(readdirSync(dir).sort(), [
      '10.244.7.10',
      '10.244.7.4',
      '10.244.7.9',
      'last_reserved_ip.0',
      'lock',
    ]);
  });
});
