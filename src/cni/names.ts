/**
 * Names derived from an attachment (containerID, ifname): the allocation records' key and the host end
 * of its veth pair. No imports, so that main.ts can use them before the rest of the plugin is loaded.
 */
/** An attachment's identity, as the spec defines it. */
export interface AttachmentKey {
  containerId: string;
  ifname: string;
}

/** FNV-1a, 64 bits, as 16 hex digits: stable, cheap, and no crypto module to load. */
export function attachmentHash(key: AttachmentKey): string {
  let h = 0xcbf29ce484222325n;
  const bytes = Buffer.from(`${key.containerId}\0${key.ifname}`, 'utf8');
  for (const b of bytes) {
    h ^= BigInt(b);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h.toString(16).padStart(16, '0');
}

/** The host end of an attachment's veth pair: weft's prefix plus the hash, at most 15 characters. */
export function hostVethName(hash: string): string {
  return `wft${hash.slice(0, 12)}`;
}

export const HOST_VETH_RE = /^wft[0-9a-f]{12}$/;
