import { WeftError } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { deleteLink, kernelOps } from './kernel.js';
import { getLink, listAddrs, type Link } from './iproute.js';
import type { Op } from './ops.js';
import { sysctlRead, sysctlWrite } from './sysctl.js';

/**
 * The udp backend's kernel objects: one TUN device, persistent and multi-queue, that the native data
 * path (weft-udp) attaches its queues to. The device belongs to the agent, not to the data path, so
 * its address and the cluster route through it (the data plane's, proto 87) survive a restart of
 * weft-udp (packets sent while no queue is attached are dropped by the kernel; a restart takes a few
 * milliseconds). What is TUN-specific lives here; the changes are Ops of the kernel layer.
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

/** Creates, adopts or repairs the TUN device: its kind, MTU, single address, no IPv6, up. */
export async function ensureTunDevice(p: TunParams, log: Logger): Promise<void> {
  let link = await getLink(p.name);
  const ops: Op[] = [];
  if (link && !compatible(link)) {
    log.warn(
      { device: p.name, found: link.linkinfo },
      'existing device is not a multi-queue tun: recreating it',
    );
    ops.push({ op: 'link-del', name: p.name });
    link = undefined;
  }
  if (!link) {
    log.info({ device: p.name, mtu: p.mtu }, 'creating TUN device');
    // No IPv6 on the tunnel: the data path carries IPv4 only.
    ops.push(
      { op: 'link-add-tun', name: p.name, multiQueue: true, vnetHdr: true },
      { op: 'link-set', name: p.name, noIpv6LinkLocal: true },
    );
  }
  if (link?.mtu !== p.mtu) ops.push({ op: 'link-set', name: p.name, mtu: p.mtu });
  const want = `${p.address}/32`;
  const have = link
    ? ((await listAddrs(p.name))[0]?.addr_info ?? [])
        .filter((a) => a.family === 'inet')
        .map((a) => `${a.local}/${a.prefixlen}`)
    : [];
  for (const a of have) if (a !== want) ops.push({ op: 'addr-del', dev: p.name, cidr: a });
  if (!have.includes(want)) ops.push({ op: 'addr-add', dev: p.name, cidr: want });
  if (!link?.flags.includes('UP')) ops.push({ op: 'link-set', name: p.name, up: true });
  const failures = await kernelOps().execute(ops);
  if (failures.length > 0)
    throw new WeftError(
      `cannot set up TUN device ${p.name}: ${failures.map((f) => `"${f.command}": ${f.message}`).join('; ')}`,
      { hint: 'the udp backend needs the kernel tun driver (/dev/net/tun) and CAP_NET_ADMIN' },
    );
  // The data path answers senders with ICMP errors from the tunnel address; without accept_local the
  // kernel would drop them as martians (their source is one of this node's own addresses).
  const key = `net/ipv4/conf/${p.name}/accept_local`;
  if ((await sysctlRead(key)) !== '1') await sysctlWrite(key, '1');
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
  const failure = await deleteLink(name);
  if (failure) throw new WeftError(`cannot remove TUN device ${name}: ${failure.message}`);
  return true;
}
