import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { BACKEND_TYPES, type BackendType } from '../config/network-config.js';
import { ConfigError, WeftError } from '../util/errors.js';
import { FAST_PATH_MODES, isFastPathMode, type FastPathMode } from '../config/fast-path-mode.js';

/**
 * A lab cluster, declared: the YAML file's keys mirror the flags of `weft lab up`
 * (name, nodes, podsPerNode, underlay, backend, network, subnetLen, mtu, ipMasq, leaseTtl, resync,
 * fastPath).
 */
export const UNDERLAYS = ['flat', 'routed', 'neutron'] as const;
export type Underlay = (typeof UNDERLAYS)[number];

export interface LabSpec {
  name: string;
  nodes: number;
  podsPerNode: number;
  underlay: Underlay;
  backend: BackendType;
  network: string;
  subnetLen: number;
  /** Underlay MTU. */
  mtu: number;
  ipMasq: boolean;
  /** Agents' lease TTL in seconds (Flannel: 86400). */
  leaseTtl: number;
  /** Agents' kernel resync period in seconds. */
  resync: number;
  /** The network config's FastPath (issue 15): none | bpf | auto. */
  fastPath: FastPathMode;
}

export const DEFAULT_SPEC: Omit<LabSpec, 'name'> = {
  nodes: 3,
  podsPerNode: 2,
  underlay: 'flat',
  backend: 'vxlan',
  network: '10.244.0.0/16',
  subnetLen: 24,
  mtu: 1500,
  ipMasq: true,
  leaseTtl: 86400,
  resync: 10,
  fastPath: 'none',
};

const KEYS = ['name', ...Object.keys(DEFAULT_SPEC)];

export function validateSpec(input: Record<string, unknown>, source = 'lab spec'): LabSpec {
  for (const k of Object.keys(input)) {
    if (!KEYS.includes(k))
      throw new ConfigError(k, `unknown key in ${source}`, `known keys: ${KEYS.join(', ')}`);
  }
  const spec = { ...DEFAULT_SPEC, ...input } as Record<string, unknown>;
  const int = (k: string, min: number, max: number): number => {
    const v = typeof spec[k] === 'string' ? Number(spec[k]) : spec[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
      throw new ConfigError(
        k,
        `must be an integer between ${min} and ${max}, got ${JSON.stringify(spec[k])}`,
      );
    return v;
  };
  const name = spec.name;
  if (typeof name !== 'string' || !/^[a-z0-9]{1,8}$/.test(name)) {
    throw new ConfigError(
      'name',
      `must be 1-8 lowercase letters or digits, got ${JSON.stringify(name)}`,
      'namespace and interface names are derived from it',
    );
  }
  if (!(UNDERLAYS as readonly string[]).includes(String(spec.underlay)))
    throw new ConfigError(
      'underlay',
      `unknown underlay ${JSON.stringify(spec.underlay)}`,
      `use ${UNDERLAYS.join(', ')}`,
    );
  if (!(BACKEND_TYPES as readonly string[]).includes(String(spec.backend)))
    throw new ConfigError(
      'backend',
      `unknown backend ${JSON.stringify(spec.backend)}`,
      `use ${BACKEND_TYPES.join(', ')}`,
    );
  if (!isFastPathMode(spec.fastPath))
    throw new ConfigError(
      'fastPath',
      `unknown fast path ${JSON.stringify(spec.fastPath)}`,
      `use ${FAST_PATH_MODES.join(', ')}`,
    );
  const bool = (k: string): boolean => {
    const v = spec[k];
    if (typeof v === 'boolean') return v;
    if (v === 'true' || v === 'false') return v === 'true';
    throw new ConfigError(k, `must be true or false, got ${JSON.stringify(v)}`);
  };
  return {
    name,
    nodes: int('nodes', 1, 60),
    podsPerNode: int('podsPerNode', 0, 50),
    underlay: spec.underlay as Underlay,
    backend: spec.backend as BackendType,
    network: String(spec.network),
    subnetLen: int('subnetLen', 8, 30),
    mtu: int('mtu', 1280, 9000),
    ipMasq: bool('ipMasq'),
    leaseTtl: int('leaseTtl', 5, 10_000_000),
    resync: int('resync', 1, 3600),
    fastPath: spec.fastPath,
  };
}

export async function loadSpecFile(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new WeftError(`cannot read lab spec ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  const doc: unknown = parseYaml(text);
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    throw new WeftError(`${path}: a lab spec is a YAML mapping of keys such as nodes: 3`);
  return doc as Record<string, unknown>;
}
