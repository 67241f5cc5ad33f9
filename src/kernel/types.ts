/**
 * The JSON that iproute2 prints with `-j` (ip and bridge 6.1), reduced to the fields weft reads: one set
 * of types for every caller (agent, CNI plugin, lab, bench). Fields the kernel omits for some objects
 * are optional; a netlink implementation would produce the same shapes.
 */

export interface LinkInfo {
  info_kind?: string;
  info_data?: Record<string, unknown>;
  info_slave_kind?: string;
  info_slave_data?: Record<string, unknown>;
}

export interface Link {
  ifindex: number;
  ifname: string;
  flags: string[];
  mtu: number;
  address: string;
  operstate?: string;
  master?: string;
  /** Only with `-d` (details). */
  linkinfo?: LinkInfo;
}

export interface AddrInfo {
  family: string;
  local: string;
  prefixlen: number;
  scope?: string;
  broadcast?: string;
  /** IPv4: the address's label (the device's name unless it was given one, e.g. `lo:weft`). */
  label?: string;
}

export interface LinkWithAddrs extends Link {
  addr_info: AddrInfo[];
}

export interface RouteEntry {
  /** "10.244.2.0/24", "198.18.0.7" (a /32 is printed without its length) or "default". */
  dst: string;
  gateway?: string;
  dev?: string;
  /** Absent for "boot" (the default of `ip route add`); a number without a name, e.g. "87". */
  protocol?: string;
  scope?: string;
  prefsrc?: string;
  table?: string;
  type?: string;
  flags?: string[];
}

export interface NeighEntry {
  dst: string;
  dev?: string;
  lladdr?: string;
  state?: string[];
}

export interface FdbEntry {
  mac: string;
  ifname?: string;
  dst?: string;
  master?: string;
  flags?: string[];
  state?: string;
}

/** "10.0.0.7" → "10.0.0.7/32": the key under which a route's destination is compared. */
export function routeKey(dst: string): string {
  if (dst === 'default') return '0.0.0.0/0';
  return dst.includes('/') ? dst : `${dst}/32`;
}
