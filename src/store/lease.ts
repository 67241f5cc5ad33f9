import { Cidr, parseIPv4 } from '../util/ipv4.js';

/**
 * A subnet lease as stored in etcd, in Flannel's keyspace and JSON (reference/flannel.md §2):
 * key <prefix>/subnets/10.244.1.0-24, value {"PublicIP","PublicIPv6","BackendType","BackendData"}.
 */
export interface LeaseAttrs {
  PublicIP: string;
  PublicIPv6?: string | null;
  BackendType?: string;
  BackendData?: unknown;
}

export interface Lease {
  subnet: Cidr;
  attrs: LeaseAttrs;
  /** etcd lease ID as a decimal string; "0" for a reservation (a key written without a lease). */
  leaseId: string;
  /** etcd mod revision of the key: the compare-and-swap guard for rewriting it. */
  modRevision: string;
}

export const DEFAULT_PREFIX = '/coreos.com/network';

export const configKey = (prefix: string): string => `${prefix}/config`;
export const subnetsPrefix = (prefix: string): string => `${prefix}/subnets/`;
export const subnetKey = (prefix: string, subnet: Cidr): string =>
  `${subnetsPrefix(prefix)}${subnet.toKey()}`;

export const isReservation = (l: Lease): boolean => l.leaseId === '0';

/** The VXLAN backend's data in a lease, {"VNI":1,"VtepMAC":"…"}, or undefined when absent/invalid. */
export function vtepOf(attrs: LeaseAttrs): { vni: number; mac: string } | undefined {
  const d = attrs.BackendData;
  if (typeof d !== 'object' || d === null) return undefined;
  const { VNI, VtepMAC } = d as { VNI?: unknown; VtepMAC?: unknown };
  if (typeof VtepMAC !== 'string' || !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(VtepMAC)) return undefined;
  return { vni: typeof VNI === 'number' ? VNI : 1, mac: VtepMAC.toLowerCase() };
}

export class LeaseParseError extends Error {}

/** Parses one key/value of the subnets prefix; throws LeaseParseError naming what is wrong. */
export function parseLease(key: string, value: string, leaseId: string, modRevision: string): Lease {
  const subnet = Cidr.fromKey(key);
  if (!subnet) throw new LeaseParseError(`key is not a subnet (<a.b.c.d>-<len>)`);
  let json: unknown;
  try {
    json = JSON.parse(value);
  } catch (e) {
    throw new LeaseParseError(`value is not JSON: ${(e as Error).message}`);
  }
  if (typeof json !== 'object' || json === null) throw new LeaseParseError('value is not a JSON object');
  const attrs = json as Record<string, unknown>;
  if (typeof attrs.PublicIP !== 'string' || parseIPv4(attrs.PublicIP) === undefined) {
    throw new LeaseParseError(
      `PublicIP is missing or not an IPv4 address: ${JSON.stringify(attrs.PublicIP)}`,
    );
  }
  return { subnet, attrs: attrs as unknown as LeaseAttrs, leaseId, modRevision };
}

/** Same peer data (what the data path depends on), regardless of revision or etcd lease. */
export function sameAttrs(a: LeaseAttrs, b: LeaseAttrs): boolean {
  return (
    a.PublicIP === b.PublicIP &&
    (a.BackendType ?? '') === (b.BackendType ?? '') &&
    JSON.stringify(a.BackendData ?? null) === JSON.stringify(b.BackendData ?? null)
  );
}
