/**
 * Decoding and validating what a runtime hands the plugin: the CNI_* environment, CNI_ARGS and the
 * network configuration on stdin. Every problem becomes a CniError with the spec's code and a message
 * that names the variable or field.
 */
import { CniError, ERR } from './errors.js';
import type { AttachmentKey } from './ipam.js';

export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export const LATEST_VERSION = '1.1.0';

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'STATUS' | 'GC' | 'VERSION';
const COMMANDS: readonly string[] = ['ADD', 'DEL', 'CHECK', 'STATUS', 'GC', 'VERSION'];

/** Compares dotted versions numerically: <0, 0, >0. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

export interface CniEnv {
  command: CniCommand;
  containerId?: string;
  netns?: string;
  ifname?: string;
  /** CNI_ARGS, raw. */
  args?: string;
}

const CONTAINER_ID_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export function validIfname(name: string): boolean {
  return name.length > 0 && name.length <= 15 && name !== '.' && name !== '..' && !/[/:\s]/.test(name);
}

/** Reads the CNI_* variables; names every required one that is missing or invalid (code 4). */
export function parseEnv(env: NodeJS.ProcessEnv): CniEnv {
  const command = env.CNI_COMMAND;
  if (command === undefined || command === '') {
    throw new CniError(ERR.INVALID_ENV, 'required env variables [CNI_COMMAND] missing');
  }
  if (!COMMANDS.includes(command)) {
    throw new CniError(
      ERR.INVALID_ENV,
      `CNI_COMMAND=${command} is not a CNI command`,
      `expected one of ${COMMANDS.join(', ')}`,
    );
  }
  const cmd = command as CniCommand;
  const required: Record<CniCommand, string[]> = {
    ADD: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
    CHECK: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
    DEL: ['CNI_CONTAINERID', 'CNI_IFNAME'],
    STATUS: [],
    GC: [],
    VERSION: [],
  };
  const missing = required[cmd].filter((k) => env[k] === undefined || env[k] === '');
  if (missing.length > 0) {
    throw new CniError(ERR.INVALID_ENV, `required env variables [${missing.join(', ')}] missing`);
  }
  const out: CniEnv = { command: cmd };
  if (env.CNI_CONTAINERID) {
    if (!CONTAINER_ID_RE.test(env.CNI_CONTAINERID)) {
      throw new CniError(
        ERR.INVALID_ENV,
        `CNI_CONTAINERID=${JSON.stringify(env.CNI_CONTAINERID)} is invalid`,
        'it must start with a letter or digit, followed by letters, digits, "_", "." or "-"',
      );
    }
    out.containerId = env.CNI_CONTAINERID;
  }
  if (env.CNI_IFNAME) {
    if (!validIfname(env.CNI_IFNAME)) {
      throw new CniError(
        ERR.INVALID_ENV,
        `CNI_IFNAME=${JSON.stringify(env.CNI_IFNAME)} is not a valid interface name`,
        'at most 15 characters, no "/", ":" or whitespace, not "." or ".."',
      );
    }
    out.ifname = env.CNI_IFNAME;
  }
  if (env.CNI_NETNS) out.netns = env.CNI_NETNS;
  if (env.CNI_ARGS) out.args = env.CNI_ARGS;
  return out;
}

const KNOWN_CNI_ARGS = new Set([
  'IgnoreUnknown',
  'IP',
  'MAC',
  'K8S_POD_NAMESPACE',
  'K8S_POD_NAME',
  'K8S_POD_INFRA_CONTAINER_ID',
  'K8S_POD_UID',
]);

/**
 * CNI_ARGS "K=V;K=V", as libcni's LoadArgs reads it: a pair without "=" is an error, and so is an unknown
 * key unless IgnoreUnknown=1 (or true) is among the pairs (kubelet and CRI runtimes always send it).
 */
export function parseCniArgs(raw: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!raw) return out;
  for (const pair of raw.split(';')) {
    if (pair === '') continue;
    const i = pair.indexOf('=');
    if (i <= 0)
      throw new CniError(
        ERR.INVALID_ENV,
        `CNI_ARGS: invalid pair ${JSON.stringify(pair)} (expected KEY=VALUE)`,
      );
    out.set(pair.slice(0, i), pair.slice(i + 1));
  }
  const ignore = ['1', 'true', 'True', 'TRUE'].includes(out.get('IgnoreUnknown') ?? '');
  if (!ignore) {
    const unknown = [...out.keys()].filter((k) => !KNOWN_CNI_ARGS.has(k));
    if (unknown.length > 0) {
      throw new CniError(
        ERR.INVALID_ENV,
        `CNI_ARGS: unknown args [${unknown.join(', ')}]`,
        `known: ${[...KNOWN_CNI_ARGS].join(', ')}; add IgnoreUnknown=1 to ignore the others`,
      );
    }
  }
  return out;
}

export interface Dns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface NetConf {
  cniVersion: string;
  name: string;
  type: string;
  subnetFile: string;
  dataDir: string;
  bridge: string;
  isDefaultGateway: boolean;
  hairpinMode: boolean;
  ipMasq: boolean;
  /** Explicit MTU; otherwise FLANNEL_MTU. */
  mtu: number | undefined;
  dns: Dns | undefined;
  /** Addresses requested by runtimeConfig.ips, else args.cni.ips (CONVENTIONS.md). */
  requestedIps: string[] | undefined;
  /** MAC requested by runtimeConfig.mac, else args.cni.mac. */
  requestedMac: string | undefined;
  prevResult: Record<string, unknown> | undefined;
  validAttachments: AttachmentKey[] | undefined;
  /** host-local's allocation directory whose addresses weft-cni shares (a node taken over from Flannel; ipam.ts). */
  hostLocalDir: string | undefined;
}

export const DEFAULTS = {
  subnetFile: '/run/flannel/subnet.env',
  dataDir: '/var/lib/cni/weft',
  bridge: 'weft0',
  isDefaultGateway: true,
  hairpinMode: false,
  ipMasq: false,
} as const;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Decodes stdin (code 6 for empty, truncated or non-object input). */
export function decodeConfig(text: string): Record<string, unknown> {
  if (text.trim() === '') {
    throw new CniError(
      ERR.DECODE,
      'no network configuration on stdin',
      'the runtime must write the JSON config to stdin',
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new CniError(
      ERR.DECODE,
      `network configuration on stdin is not valid JSON: ${(e as Error).message}`,
      `${text.length} bytes received, starting ${JSON.stringify(text.slice(0, 60))}`,
    );
  }
  if (!isObject(parsed)) {
    throw new CniError(
      ERR.DECODE,
      `network configuration on stdin must be a JSON object, got ${Array.isArray(parsed) ? 'an array' : typeof parsed}`,
    );
  }
  return parsed;
}

/** The cniVersion of a decoded config, checked against the supported list (code 1). */
export function configVersion(raw: Record<string, unknown>): string {
  const v = raw.cniVersion;
  if (v === undefined) {
    throw new CniError(
      ERR.INCOMPATIBLE_VERSION,
      `network configuration has no cniVersion (taken as 0.1.0); weft-cni supports ${SUPPORTED_VERSIONS.join(', ')}`,
    );
  }
  if (typeof v !== 'string')
    throw new CniError(ERR.INVALID_CONFIG, `cniVersion must be a string, got ${JSON.stringify(v)}`);
  if (!(SUPPORTED_VERSIONS as readonly string[]).includes(v)) {
    throw new CniError(
      ERR.INCOMPATIBLE_VERSION,
      `incompatible CNI versions: config is "${v}", weft-cni supports ${SUPPORTED_VERSIONS.join(', ')}`,
    );
  }
  return v;
}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

function str(raw: Record<string, unknown>, key: string, dflt: string): string {
  const v = raw[key];
  if (v === undefined) return dflt;
  if (typeof v !== 'string' || v === '')
    throw new CniError(ERR.INVALID_CONFIG, `${key} must be a non-empty string, got ${JSON.stringify(v)}`);
  return v;
}
function bool(raw: Record<string, unknown>, key: string, dflt: boolean): boolean {
  const v = raw[key];
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean')
    throw new CniError(ERR.INVALID_CONFIG, `${key} must be true or false, got ${JSON.stringify(v)}`);
  return v;
}
function strList(v: unknown, key: string): string[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
    throw new CniError(ERR.INVALID_CONFIG, `${key} must be a list of strings, got ${JSON.stringify(v)}`);
  }
  return v as string[];
}

/** Validates the network configuration's fields (code 7, or 2 for a field weft-cni does not support). */
export function parseNetConf(raw: Record<string, unknown>, cniVersion: string): NetConf {
  const name = raw.name;
  if (typeof name !== 'string' || name === '')
    throw new CniError(ERR.INVALID_CONFIG, 'network configuration has no "name"');
  if (!NAME_RE.test(name)) {
    throw new CniError(
      ERR.INVALID_CONFIG,
      `name ${JSON.stringify(name)} is invalid`,
      'letters, digits, "_", "." and "-", starting with a letter or digit',
    );
  }
  if (raw.ipam !== undefined) {
    throw new CniError(
      ERR.UNSUPPORTED_FIELD,
      `unsupported field "ipam": ${JSON.stringify(raw.ipam)}`,
      'weft-cni allocates addresses itself from the node subnet in subnetFile; remove "ipam"',
    );
  }
  const bridge = str(raw, 'bridge', DEFAULTS.bridge);
  if (!/^[a-zA-Z0-9_.-]{1,15}$/.test(bridge))
    throw new CniError(ERR.INVALID_CONFIG, `bridge ${JSON.stringify(bridge)} is not a valid interface name`);
  const dataDir = str(raw, 'dataDir', DEFAULTS.dataDir);
  if (!dataDir.startsWith('/'))
    throw new CniError(
      ERR.INVALID_CONFIG,
      `dataDir must be an absolute path, got ${JSON.stringify(dataDir)}`,
    );
  let mtu: number | undefined;
  if (raw.mtu !== undefined) {
    if (typeof raw.mtu !== 'number' || !Number.isInteger(raw.mtu) || raw.mtu < 576 || raw.mtu > 65535) {
      throw new CniError(
        ERR.INVALID_CONFIG,
        `mtu must be an integer between 576 and 65535, got ${JSON.stringify(raw.mtu)}`,
      );
    }
    mtu = raw.mtu;
  }
  let dns: Dns | undefined;
  if (raw.dns !== undefined) {
    if (!isObject(raw.dns))
      throw new CniError(ERR.INVALID_CONFIG, `dns must be an object, got ${JSON.stringify(raw.dns)}`);
    dns = {};
    const ns = strList(raw.dns.nameservers, 'dns.nameservers');
    if (ns) dns.nameservers = ns;
    if (typeof raw.dns.domain === 'string') dns.domain = raw.dns.domain;
    const search = strList(raw.dns.search, 'dns.search');
    if (search) dns.search = search;
    const options = strList(raw.dns.options, 'dns.options');
    if (options) dns.options = options;
  }
  // runtimeConfig: only the capabilities weft-cni acts on; others (portMappings, bandwidth, …) belong to
  // other plugins of the chain and are ignored, as the spec asks.
  const rc = isObject(raw.runtimeConfig) ? raw.runtimeConfig : {};
  if (raw.runtimeConfig !== undefined && !isObject(raw.runtimeConfig)) {
    throw new CniError(
      ERR.INVALID_CONFIG,
      `runtimeConfig must be an object, got ${JSON.stringify(raw.runtimeConfig)}`,
    );
  }
  // args: optional metadata; only args.cni.ips and args.cni.mac mean something here, the rest is ignored.
  const cniArgs = isObject(raw.args) && isObject(raw.args.cni) ? raw.args.cni : {};
  const requestedIps = strList(rc.ips, 'runtimeConfig.ips') ?? strList(cniArgs.ips, 'args.cni.ips');
  const macRaw = rc.mac ?? cniArgs.mac;
  let requestedMac: string | undefined;
  if (macRaw !== undefined) {
    if (typeof macRaw !== 'string' || !/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(macRaw)) {
      throw new CniError(ERR.INVALID_CONFIG, `requested MAC ${JSON.stringify(macRaw)} is not a MAC address`);
    }
    if ((parseInt(macRaw.slice(0, 2), 16) & 1) === 1)
      throw new CniError(ERR.INVALID_CONFIG, `requested MAC ${macRaw} is a multicast address`);
    requestedMac = macRaw.toLowerCase();
  }
  let prevResult: Record<string, unknown> | undefined;
  if (raw.prevResult !== undefined) {
    if (!isObject(raw.prevResult)) throw new CniError(ERR.INVALID_CONFIG, `prevResult must be an object`);
    prevResult = raw.prevResult;
  }
  let validAttachments: AttachmentKey[] | undefined;
  const va = raw['cni.dev/valid-attachments'];
  if (va !== undefined) {
    if (!Array.isArray(va))
      throw new CniError(ERR.INVALID_CONFIG, 'cni.dev/valid-attachments must be a list');
    validAttachments = va.map((a, i) => {
      if (!isObject(a) || typeof a.containerID !== 'string' || typeof a.ifname !== 'string') {
        throw new CniError(
          ERR.INVALID_CONFIG,
          `cni.dev/valid-attachments[${i}] must be {"containerID": string, "ifname": string}`,
        );
      }
      return { containerId: a.containerID, ifname: a.ifname };
    });
  }
  const hostLocalDir = raw.hostLocalDir === undefined ? undefined : str(raw, 'hostLocalDir', '');
  if (hostLocalDir !== undefined && !hostLocalDir.startsWith('/'))
    throw new CniError(
      ERR.INVALID_CONFIG,
      `hostLocalDir must be an absolute path, got ${JSON.stringify(hostLocalDir)}`,
      "host-local's directory of the network, e.g. /var/lib/cni/networks/cbr0",
    );
  return {
    cniVersion,
    name,
    type: typeof raw.type === 'string' ? raw.type : 'weft-cni',
    subnetFile: str(raw, 'subnetFile', DEFAULTS.subnetFile),
    dataDir,
    bridge,
    isDefaultGateway: bool(raw, 'isDefaultGateway', DEFAULTS.isDefaultGateway),
    hairpinMode: bool(raw, 'hairpinMode', DEFAULTS.hairpinMode),
    ipMasq: bool(raw, 'ipMasq', DEFAULTS.ipMasq),
    mtu,
    dns,
    requestedIps,
    requestedMac,
    prevResult,
    validAttachments,
    hostLocalDir,
  };
}
