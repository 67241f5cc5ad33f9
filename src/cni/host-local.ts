/**
 * The reference host-local IPAM's allocation directory, shared with weft-cni on a node taken over from
 * Flannel (issue 14). Flannel's CNI plugin delegates to bridge + host-local, which keeps one file per
 * address in <dataDir>/<network>/ (default /var/lib/cni/networks/cbr0): the file is named by the
 * address and holds "<containerID>\r\n<ifname>" (older versions: the container ID alone), created with
 * O_EXCL. weft-cni, given that directory as `hostLocalDir` (its store, ipam.ts, then shares it):
 *   - never hands out an address that has a file there (pods Flannel's CNI attached keep theirs);
 *   - reserves each address it hands out there too, with the same O_EXCL create and the same content, so
 *     that host-local, should the node go back to Flannel, never hands it out again, and a race with a
 *     host-local ADD still running is lost by one side cleanly;
 *   - releases the files of an attachment on DEL and GC, whether weft-cni or host-local wrote them, so that
 *     DEL of an old pod through weft-cni frees its address as host-local's own DEL would.
 * Only plain file operations: no kernel access.
 */
import {
  closeSync,
  openSync,
  readdirSync,
  readFileSync,
  unlinkSync,
  writeSync,
  constants as fsc,
} from 'node:fs';
import { parseIPv4, type IPv4 } from '../util/ipv4.js';
import { CniError, ERR } from './errors.js';
import type { AttachmentKey } from './names.js';

const LINE_BREAK = '\r\n';

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

function files(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch (e) {
    if (errno(e) === 'ENOENT') return [];
    throw new CniError(ERR.IO, `cannot read host-local's allocations in ${dir}: ${errno(e) ?? String(e)}`);
  }
}

/**
 * host-local's directory of one network (e.g. /var/lib/cni/networks/cbr0), as weft-cni's allocation
 * store shares it (ipam.ts): the addresses it holds, an exclusive reservation, a release by attachment.
 */
export class HostLocalDir {
  constructor(readonly dir: string) {}

  /** Addresses host-local (or weft-cni on its behalf) has given out. */
  used(): IPv4[] {
    return files(this.dir).flatMap((f) => {
      const ip = parseIPv4(f);
      return ip === undefined ? [] : [ip];
    });
  }

  /** Reserves `ip` for the attachment; false when the address already has a file (someone else's). */
  reserve(ip: string, key: AttachmentKey): boolean {
    let fd: number;
    try {
      fd = openSync(`${this.dir}/${ip}`, fsc.O_RDWR | fsc.O_CREAT | fsc.O_EXCL, 0o600);
    } catch (e) {
      if (errno(e) === 'EEXIST') return false;
      throw new CniError(
        ERR.IO,
        `cannot reserve ${ip} in host-local's ${this.dir}: ${errno(e) ?? String(e)}`,
      );
    }
    try {
      writeSync(fd, key.containerId.trim() + LINE_BREAK + key.ifname);
    } finally {
      closeSync(fd);
    }
    return true;
  }

  /** Removes the attachment's files (weft-cni's reservations and host-local's own); returns their addresses. */
  release(key: AttachmentKey): string[] {
    const match = key.containerId.trim() + LINE_BREAK + key.ifname;
    const released: string[] = [];
    for (const f of files(this.dir)) {
      if (parseIPv4(f) === undefined) continue;
      let content: string;
      try {
        content = readFileSync(`${this.dir}/${f}`, 'utf8').trim();
      } catch {
        continue; // released meanwhile
      }
      if (content !== match && content !== key.containerId.trim()) continue;
      try {
        unlinkSync(`${this.dir}/${f}`);
        released.push(f);
      } catch (e) {
        if (errno(e) !== 'ENOENT')
          throw new CniError(
            ERR.IO,
            `cannot release ${f} in host-local's ${this.dir}: ${errno(e) ?? String(e)}`,
          );
      }
    }
    return released;
  }
}
