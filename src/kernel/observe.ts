import { run } from '../util/exec.js';
import { CommandError } from '../util/errors.js';

/**
 * Kernel calls of the lab's service routing and of `weft trace`, each inside a named network
 * namespace the lab made (never the machine's own): nftables tables (load, list, delete), device and
 * route facts from iproute2, and iptables counters (Neutron's linuxbridge agent speaks iptables).
 */

const inNs = (netns: string, argv: string[]) => ['netns', 'exec', netns, ...argv];

/** Loads an nftables script (one transaction: all of it or nothing). */
export async function nftLoad(netns: string, script: string): Promise<void> {
  await run('ip', inNs(netns, ['nft', '-f', '-']), { input: script });
}

/** The tables of a namespace as "family name" pairs. */
export async function nftTables(netns: string): Promise<{ family: string; name: string }[]> {
  const r = await run('ip', inNs(netns, ['nft', '-j', 'list', 'tables']), { allowFailure: true });
  if (r.code !== 0) return [];
  const doc = JSON.parse(r.stdout) as { nftables: { table?: { family: string; name: string } }[] };
  return doc.nftables.flatMap((x) => (x.table ? [{ family: x.table.family, name: x.table.name }] : []));
}

/** Deletes a table; a table that is already gone is not an error. */
export async function nftDeleteTable(netns: string, family: string, name: string): Promise<void> {
  const r = await run('ip', inNs(netns, ['nft', 'delete', 'table', family, name]), { allowFailure: true });
  if (r.code !== 0 && !/No such file or directory/.test(r.stderr))
    throw new CommandError(`nft delete table ${family} ${name} (netns ${netns})`, r.code, r.stderr);
}

/** `nft -a list ruleset`: rules with their handles, to name the rule a trace event points at. */
export async function nftRulesetText(netns: string): Promise<string> {
  return (await run('ip', inNs(netns, ['nft', '-a', 'list', 'ruleset']), { allowFailure: true })).stdout;
}

export interface DeviceFacts {
  ifindex: number;
  ifname: string;
  mtu: number;
  kind: string;
  master?: string;
  addresses: string[];
  /** VXLAN: VNI and UDP port. */
  vxlan?: { id: number; port: number };
}

interface IpLinkJson {
  ifindex: number;
  ifname: string;
  mtu: number;
  master?: string;
  link_type?: string;
  linkinfo?: { info_kind?: string; info_data?: { id?: number; port?: number } };
  addr_info?: { family: string; local: string; prefixlen: number }[];
}

/** Every device of a namespace with its kind (veth, bridge, vxlan, tun…), MTU, master and IPv4 addresses. */
export async function devicesIn(netns: string): Promise<DeviceFacts[]> {
  const r = await run('ip', ['-n', netns, '-j', '-d', 'addr', 'show'], { allowFailure: true });
  if (r.code !== 0 || !r.stdout.trim()) return [];
  return (JSON.parse(r.stdout) as IpLinkJson[]).map((l) => ({
    ifindex: l.ifindex,
    ifname: l.ifname,
    mtu: l.mtu,
    kind:
      l.linkinfo?.info_kind ??
      (l.link_type === 'loopback' ? 'loopback' : l.link_type === 'none' ? 'tun' : 'device'),
    ...(l.master !== undefined && { master: l.master }),
    addresses: (l.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`),
    ...(l.linkinfo?.info_kind === 'vxlan' && {
      vxlan: { id: l.linkinfo.info_data?.id ?? 0, port: l.linkinfo.info_data?.port ?? 0 },
    }),
  }));
}

export interface RouteLookup {
  dev?: string;
  gateway?: string;
  prefsrc?: string;
  error?: string;
}

/** `ip route get DST` in a namespace: which device and source address a packet to DST would take. */
export async function routeGet(netns: string, dst: string): Promise<RouteLookup> {
  const r = await run('ip', ['-n', netns, '-j', 'route', 'get', dst], { allowFailure: true });
  if (r.code !== 0) return { error: r.stderr.trim().replace(/^RTNETLINK answers: /, '') };
  const [e] = JSON.parse(r.stdout) as { dev?: string; gateway?: string; prefsrc?: string }[];
  return {
    ...(e?.dev && { dev: e.dev }),
    ...(e?.gateway && { gateway: e.gateway }),
    ...(e?.prefsrc && { prefsrc: e.prefsrc }),
  };
}

/** iptables rules with their packet counters (`iptables-save -c`), or '' when iptables is absent. */
export async function iptablesSave(netns: string): Promise<string> {
  const r = await run('ip', inNs(netns, ['iptables-save', '-c']), { allowFailure: true });
  return r.code === 0 ? r.stdout : '';
}
