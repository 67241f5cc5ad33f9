import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Cidr, parseIPv4 } from '../util/ipv4.js';
import { WeftError } from '../util/errors.js';

/**
 * Flannel's subnet file (/run/flannel/subnet.env): the contract between the agent, which writes it,
 * and the CNI plugin and other tools, which read it. FLANNEL_SUBNET is the first usable address of the
 * node's lease in CIDR form (the bridge gateway), as Flannel writes it.
 */
export interface SubnetEnv {
  network: Cidr;
  /** The node's lease, network address form (10.244.1.0/24). */
  subnet: Cidr;
  /** The gateway address written in FLANNEL_SUBNET (10.244.1.1). */
  gateway: number;
  mtu: number;
  ipMasq: boolean;
}

export const DEFAULT_SUBNET_FILE = '/run/flannel/subnet.env';

export function formatSubnetEnv(env: SubnetEnv): string {
  const gw = new Cidr(env.gateway, 32).toString().replace(/\/32$/, '');
  return [
    `FLANNEL_NETWORK=${env.network.toString()}`,
    `FLANNEL_SUBNET=${gw}/${env.subnet.len}`,
    `FLANNEL_MTU=${env.mtu}`,
    `FLANNEL_IPMASQ=${env.ipMasq}`,
    '',
  ].join('\n');
}

export function parseSubnetEnv(text: string, path = 'subnet.env'): SubnetEnv {
  const vars = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Z0-9_]+)=(.*)$/.exec(line);
    if (m) vars.set(m[1]!, m[2]!.trim());
  }
  const need = (k: string): string => {
    const v = vars.get(k);
    if (v === undefined || v === '')
      throw new WeftError(`${path} is missing ${k}`, { hint: 'is the weft agent running on this node?' });
    return v;
  };
  // FLANNEL_NETWORK may list several networks separated by commas (Flannel's multi-network form).
  const network = Cidr.parse(need('FLANNEL_NETWORK').split(',')[0]!);
  if (!network)
    throw new WeftError(`${path}: FLANNEL_NETWORK is not an IPv4 CIDR: ${vars.get('FLANNEL_NETWORK')}`);
  const sn = need('FLANNEL_SUBNET');
  const subnet = Cidr.parse(sn);
  const gateway = parseIPv4(sn.split('/')[0] ?? '');
  if (!subnet || gateway === undefined)
    throw new WeftError(`${path}: FLANNEL_SUBNET is not an IPv4 CIDR: ${sn}`);
  const mtu = Number(need('FLANNEL_MTU'));
  if (!Number.isInteger(mtu) || mtu < 576 || mtu > 65535)
    throw new WeftError(`${path}: FLANNEL_MTU is not a valid MTU: ${vars.get('FLANNEL_MTU')}`);
  const ipMasq = (vars.get('FLANNEL_IPMASQ') ?? 'false') === 'true';
  return { network, subnet, gateway, mtu, ipMasq };
}

export async function readSubnetEnv(path: string): Promise<SubnetEnv> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new WeftError(`cannot read ${path}: ${code ?? String(err)}`, {
      hint: 'the node has no lease yet: start the weft agent on this node and wait until it is ready',
    });
  }
  return parseSubnetEnv(text, path);
}

/** Writes the file atomically (temp file + rename), mode 0644, as Flannel does. */
export async function writeSubnetEnv(path: string, env: SubnetEnv): Promise<void> {
  await writeFileAtomic(path, formatSubnetEnv(env));
}

export async function writeFileAtomic(path: string, content: string, mode = 0o644): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, content, { mode });
  await rename(tmp, path);
}
