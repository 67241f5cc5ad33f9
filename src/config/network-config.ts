import { Cidr, formatIPv4, parseIPv4 } from '../util/ipv4.js';
import { ConfigError } from '../util/errors.js';
import { FAST_PATH_MODES, isFastPathMode, type FastPathMode } from './fast-path-mode.js';

/**
 * The network configuration at <prefix>/config, in Flannel's format (reference/flannel.md §2). Field
 * names are matched case-insensitively, as Go's JSON decoder does for Flannel. Validation errors name
 * the field and the problem in one line.
 */

export const BACKEND_TYPES = ['vxlan', 'host-gw', 'neutron', 'auto', 'udp'] as const;
export type BackendType = (typeof BACKEND_TYPES)[number];

/** Extra keys of a network config's Backend object beside `Type` (udp's `Batch`, say), as written. */
export type BackendOptions = Record<string, unknown>;

export interface BackendConfig {
  type: BackendType;
  /** VXLAN network identifier (vxlan, and auto's fallback path). */
  vni: number;
  /** UDP destination port: of the VXLAN device (vxlan, auto), of the tunnel datagrams (udp). */
  port: number;
  /** Explicit underlay MTU to derive the pod MTU from, instead of the interface's. */
  mtu: number | undefined;
  /** udp: most packets per system call; 1 is Flannel's proxy (one packet per call, no offloads). */
  batch: number;
  /** udp: data-path threads (a TUN queue and a socket each); undefined: chosen from the CPU count. */
  workers: number | undefined;
  /** The raw Backend object, for backend-specific keys (e.g. the cloud settings of `neutron`). */
  raw: Record<string, unknown>;
}

export interface NetworkConfig {
  network: Cidr;
  subnetLen: number;
  subnetMin: number;
  subnetMax: number;
  backend: BackendConfig;
  /** weft's own key `FastPath` (none | bpf | auto): the BPF fast path, when the agent flag does not say. */
  fastPath?: FastPathMode;
}

export const DEFAULT_VXLAN_PORT = 8472;
/** Flannel's udp backend port. */
export const DEFAULT_UDP_PORT = 8285;
export const DEFAULT_VNI = 1;
export const DEFAULT_UDP_BATCH = 64;

type Obj = Record<string, unknown>;

/** Case-insensitive lookup of a JSON key; returns the key as the user spelled it, for messages. */
function field(obj: Obj, name: string): [string, unknown] {
  for (const k of Object.keys(obj)) if (k.toLowerCase() === name.toLowerCase()) return [k, obj[k]];
  return [name, undefined];
}

function intField(obj: Obj, name: string, prefix: string, min: number, max: number): number | undefined {
  const [k, v] = field(obj, name);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v))
    throw new ConfigError(prefix + k, `must be an integer, got ${JSON.stringify(v)}`);
  if (v < min || v > max)
    throw new ConfigError(prefix + k, `${v} is out of range: must be between ${min} and ${max}`);
  return v;
}

export function parseNetworkConfig(text: string): NetworkConfig {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(
      'config',
      `not valid JSON: ${(err as Error).message}`,
      'write the config as a JSON object',
    );
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ConfigError(
      'config',
      `must be a JSON object, got ${Array.isArray(json) ? 'an array' : typeof json}`,
    );
  }
  return validateNetworkConfig(json as Obj);
}

export function validateNetworkConfig(obj: Obj): NetworkConfig {
  for (const name of ['EnableIPv6', 'IPv6Network']) {
    const [k, v] = field(obj, name);
    if (v !== undefined && v !== false && v !== null && v !== '')
      throw new ConfigError(k, 'IPv6 is not supported yet', 'remove it');
  }
  const [nk, nv] = field(obj, 'Network');
  if (nv === undefined)
    throw new ConfigError('Network', 'missing', 'set it to the cluster pod CIDR, e.g. "10.244.0.0/16"');
  if (typeof nv !== 'string') throw new ConfigError(nk, `must be a string CIDR, got ${JSON.stringify(nv)}`);
  const loose = Cidr.parse(nv);
  if (!loose) throw new ConfigError(nk, `"${nv}" is not an IPv4 CIDR`, 'use the form "10.244.0.0/16"');
  if (!Cidr.parse(nv, true))
    throw new ConfigError(nk, `"${nv}" has host bits set`, `did you mean "${loose.toString()}"?`);
  const network = loose;
  if (network.len > 28)
    throw new ConfigError(nk, `${network.toString()} is too small: the network must be a /28 or larger`);

  const defaultLen = network.len <= 22 ? 24 : network.len + 2;
  const [slk, slv] = field(obj, 'SubnetLen');
  let subnetLen = defaultLen;
  if (slv !== undefined && slv !== null && slv !== 0) {
    if (typeof slv !== 'number' || !Number.isInteger(slv))
      throw new ConfigError(slk, `must be an integer, got ${JSON.stringify(slv)}`);
    if (slv < 1 || slv > 30)
      throw new ConfigError(
        slk,
        `${slv} is out of range: must be between ${Math.min(network.len + 2, 30)} and 30`,
      );
    if (slv <= network.len) {
      throw new ConfigError(
        slk,
        `${slv} is out of range: must be longer than the Network prefix /${network.len} (between ${network.len + 2} and 30)`,
      );
    }
    if (slv < network.len + 2) {
      throw new ConfigError(
        nk,
        `${network.toString()} is too small for SubnetLen ${slv}: it must hold at least 4 subnets`,
        `use a /${slv - 2} or larger Network, or a SubnetLen of at least ${network.len + 2}`,
      );
    }
    subnetLen = slv;
  }
  const subnetSize = 2 ** (32 - subnetLen);
  const bound = (name: string, dflt: number): number => {
    const [k, v] = field(obj, name);
    if (v === undefined || v === null || v === '') return dflt;
    const ip = typeof v === 'string' ? parseIPv4(v) : undefined;
    if (ip === undefined) throw new ConfigError(k, `${JSON.stringify(v)} is not an IPv4 address`);
    if (!network.contains(ip)) throw new ConfigError(k, `${v} is outside Network ${network.toString()}`);
    if ((ip - network.ip) % subnetSize !== 0)
      throw new ConfigError(k, `${v} is not on a /${subnetLen} boundary`);
    return ip;
  };
  // Flannel skips the first subnet by default (it holds the network address).
  const subnetMin = bound('SubnetMin', network.ip + subnetSize);
  const subnetMax = bound('SubnetMax', network.last - subnetSize + 1);
  if (subnetMin > subnetMax) {
    throw new ConfigError(
      'SubnetMin',
      `${formatIPv4(subnetMin)} is above SubnetMax ${formatIPv4(subnetMax)}`,
    );
  }
  const [fk, fv] = field(obj, 'FastPath');
  if (fv !== undefined && fv !== null && !isFastPathMode(fv))
    throw new ConfigError(fk, `unknown fast path ${JSON.stringify(fv)}`, `use ${FAST_PATH_MODES.join(', ')}`);
  return {
    network,
    subnetLen,
    subnetMin,
    subnetMax,
    backend: parseBackend(obj),
    ...(isFastPathMode(fv) && { fastPath: fv }),
  };
}

function parseBackend(obj: Obj): BackendConfig {
  const [bk, bv] = field(obj, 'Backend');
  // Flannel silently falls back to "udp" when Backend is absent; weft's default is explicit: vxlan.
  if (bv === undefined || bv === null)
    return {
      type: 'vxlan',
      vni: DEFAULT_VNI,
      port: DEFAULT_VXLAN_PORT,
      mtu: undefined,
      batch: DEFAULT_UDP_BATCH,
      workers: undefined,
      raw: {},
    };
  if (typeof bv !== 'object' || Array.isArray(bv))
    throw new ConfigError(bk, 'must be an object such as {"Type": "vxlan"}');
  const b = bv as Obj;
  const [tk, tv] = field(b, 'Type');
  const type = tv === undefined ? 'vxlan' : tv;
  if (typeof type !== 'string' || !(BACKEND_TYPES as readonly string[]).includes(type)) {
    throw new ConfigError(
      `${bk}.${tk}`,
      `unknown backend type ${JSON.stringify(type)}`,
      `supported: ${BACKEND_TYPES.join(', ')}`,
    );
  }
  const p = `${bk}.`;
  const vni = intField(b, 'VNI', p, 1, 16777215) ?? DEFAULT_VNI;
  const portV = intField(b, 'Port', p, 0, 65535);
  const defaultPort = type === 'udp' ? DEFAULT_UDP_PORT : DEFAULT_VXLAN_PORT;
  const port = portV === undefined || portV === 0 ? defaultPort : portV;
  const mtu = intField(b, 'MTU', p, 576, 65535);
  const batch = intField(b, 'Batch', p, 1, 1024) ?? DEFAULT_UDP_BATCH;
  const workers = intField(b, 'Workers', p, 1, 16);
  return { type: type as BackendType, vni, port, mtu, batch, workers, raw: b };
}

/** The config written into etcd by labs and tests, in Flannel's JSON spelling. */
export function formatNetworkConfig(c: {
  network: string;
  subnetLen?: number;
  backend: { type: BackendType; vni?: number; port?: number; mtu?: number } & Record<string, unknown>;
  fastPath?: FastPathMode;
}): string {
  const { type, vni, port, mtu, ...rest } = c.backend;
  return JSON.stringify({
    Network: c.network,
    ...(c.subnetLen !== undefined && { SubnetLen: c.subnetLen }),
    ...(c.fastPath !== undefined && { FastPath: c.fastPath }),
    Backend: {
      Type: type,
      ...(vni !== undefined && { VNI: vni }),
      ...(port !== undefined && { Port: port }),
      ...(mtu !== undefined && { MTU: mtu }),
      ...rest,
    },
  });
}
