import { readFile, writeFile } from 'node:fs/promises';
import { WeftError } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { batch, getLink, listAddrs, type Link } from './iproute.js';

/**
 * The udp backend's kernel objects: one TUN device, persistent and multi-queue, that the native data
 * path (weft-udp) attaches its queues to. The device belongs to the agent, not to the data path, so
 * its address and the cluster route through it survive a restart of weft-udp (packets sent while no
 * queue is attached are dropped by the kernel; the restart takes a few milliseconds).
 */

export interface TunParams {
  name: string;
  mtu: number;
  /** The node's tunnel address (its subnet's .0), /32: the source of node → pod traffic. */
  address: string;
}

/** A tun (not tap), without packet info, multi-queue, persistent: what weft-udp can attach to. */
function compatible(link: Link): boolean {
  const info = link.linkinfo;
  const d = info?.info_data;
  return info?.info_kind === 'tun' && d?.type === 'tun' && d.pi === false && d.multi_queue === true;
}

const procConf = (dev: string, key: string) => `/proc/sys/net/ipv4/conf/${dev}/${key}`;

export async function ensureTunDevice(p: TunParams, log: Logger): Promise<void> {
  let link = await getLink(p.name);
  const cmds: string[] = [];
  if (link && !compatible(link)) {
    log.warn(
      { device: p.name, found: link.linkinfo },
      'existing device is not a multi-queue tun: recreating it',
    );
    cmds.push(`link del ${p.name}`);
    link = undefined;
  }
  if (!link) {
    log.info({ device: p.name, mtu: p.mtu }, 'creating TUN device');
    // No IPv6 on the tunnel: the data path carries IPv4 only.
    cmds.push(
      `tuntap add dev ${p.name} mode tun multi_queue vnet_hdr`,
      `link set ${p.name} addrgenmode none`,
    );
  }
  if (link?.mtu !== p.mtu) cmds.push(`link set ${p.name} mtu ${p.mtu}`);
  const want = `${p.address}/32`;
  const have = link
    ? ((await listAddrs(p.name))[0]?.addr_info ?? [])
        .filter((a) => a.family === 'inet')
        .map((a) => `${a.local}/${a.prefixlen}`)
    : [];
  for (const a of have) if (a !== want) cmds.push(`addr del ${a} dev ${p.name}`);
  if (!have.includes(want)) cmds.push(`addr add ${want} dev ${p.name}`);
  if (!link?.flags.includes('UP')) cmds.push(`link set ${p.name} up`);
  const failures = await batch(cmds);
  if (failures.length > 0)
    throw new WeftError(
      `cannot set up TUN device ${p.name}: ${failures.map((f) => `"${f.command}": ${f.message}`).join('; ')}`,
      { hint: 'the udp backend needs the kernel tun driver (/dev/net/tun) and CAP_NET_ADMIN' },
    );
  // The data path answers senders with ICMP errors from the tunnel address; without accept_local the
  // kernel would drop them as martians (their source is one of this node's own addresses).
  const key = procConf(p.name, 'accept_local');
  if ((await readFile(key, 'utf8')).trim() !== '1') await writeFile(key, '1');
}

/**
 * The address the tunnel's socket binds to: the public IP when the interface holds it, else the
 * interface's first IPv4 address (a public IP given with --public-ip may be a NAT address, as Flannel
 * allows; datagrams then leave from the interface's own address).
 */
export async function tunnelBindAddress(iface: string, publicIP: string): Promise<string> {
  const addrs = ((await listAddrs(iface))[0]?.addr_info ?? [])
    .filter((a) => a.family === 'inet')
    .map((a) => a.local);
  return addrs.includes(publicIP) ? publicIP : (addrs[0] ?? publicIP);
}

/** Removes the TUN device (with its address and routes) if it exists; returns whether it did. */
export async function removeTunDevice(name: string): Promise<boolean> {
  const link = await getLink(name);
  if (!link || link.linkinfo?.info_kind !== 'tun') return false;
  const failures = await batch([`link del ${name}`]);
  if (failures.length > 0) throw new WeftError(`cannot remove TUN device ${name}: ${failures[0]!.message}`);
  return true;
}
