import { existsSync } from 'node:fs';
import { readdir, readFile, readlink } from 'node:fs/promises';
import { run } from '../util/exec.js';
import {
  batch,
  listFdb,
  listLinks,
  listNeighs,
  listRoutes,
  type FdbEntry,
  type NeighEntry,
  type RouteEntry,
} from './iproute.js';

/**
 * The kernel side of taking a node over from Flannel (issue 14): finding what flanneld leaves in a
 * node's network namespace, renaming its VXLAN device, and removing its rules and devices. It only reads
 * and acts on what it is told; which object is Flannel's and in what order things happen is decided by
 * src/agent/takeover.ts. Names and shapes are flanneld's (reference/flannel.md §4.3 and §5):
 *   devices   flannel.<VNI> (vxlan), flannel-v6.<VNI>, flannel0 (udp TUN), flannel.ipip, flannel-wg[-v6]
 *   rules     iptables nat FLANNEL-POSTRTG (jumped to from POSTROUTING, comment "flanneld masq") and
 *             filter FLANNEL-FWD (from FORWARD, "flanneld forward"); in nftables mode the tables
 *             ip flannel-ipv4 and ip6 flannel-ipv6.
 */

export interface VxlanLink {
  name: string;
  vni: number;
  port: number;
  local: string | undefined;
  /** The underlay device the tunnel is bound to. */
  underlay: string | undefined;
  mac: string;
  mtu: number;
  learning: boolean;
  up: boolean;
}

/** A route as `ip -j route show` prints it, with its type (unicast is omitted by iproute2). */
export interface MainRoute extends RouteEntry {
  type?: string;
}

/** Rules of one iptables flavour (iptables-nft or iptables-legacy) in Flannel's chains. */
export interface IptablesFlannel {
  /** The restore/save tools of this flavour. */
  flavour: 'nft' | 'legacy';
  /** Chains named FLANNEL-*, by table: {nat: ['FLANNEL-POSTRTG'], filter: ['FLANNEL-FWD']}. */
  chains: Record<string, string[]>;
  /** Rules of built-in chains that jump to a FLANNEL-* chain, as `-A CHAIN …` lines, by table. */
  jumps: Record<string, string[]>;
  /** Whether FLANNEL-POSTRTG masquerades (flanneld --ip-masq). */
  masquerades: boolean;
  /** The policy of filter FORWARD (DROP when Docker set it). */
  forwardPolicy: string | undefined;
}

const FLANNEL_DEVICE = /^flannel(\.\d+|-v6\.\d+|0|\.ipip|-wg|-wg-v6)$/;

/** Every device whose name is one flanneld gives its devices, with its kind. */
export async function listFlannelDevices(): Promise<{ name: string; kind: string }[]> {
  return (await listLinks())
    .filter((l) => FLANNEL_DEVICE.test(l.ifname))
    .map((l) => ({ name: l.ifname, kind: l.linkinfo?.info_kind ?? 'unknown' }));
}

/** All VXLAN devices of this namespace, whoever made them. */
export async function listVxlanLinks(): Promise<VxlanLink[]> {
  const out: VxlanLink[] = [];
  for (const l of await listLinks()) {
    if (l.linkinfo?.info_kind !== 'vxlan') continue;
    const d = l.linkinfo.info_data ?? {};
    out.push({
      name: l.ifname,
      vni: typeof d.id === 'number' ? d.id : -1,
      port: typeof d.port === 'number' ? d.port : 8472,
      local: typeof d.local === 'string' ? d.local : undefined,
      underlay: typeof d.link === 'string' ? d.link : undefined,
      mac: l.address.toLowerCase(),
      mtu: l.mtu,
      learning: d.learning === true,
      up: l.flags.includes('UP'),
    });
  }
  return out;
}

/** The main table's routes, every protocol. */
export const listMainRoutes = (): Promise<MainRoute[]> => listRoutes() as Promise<MainRoute[]>;

/** A VXLAN device's permanent neighbours and its FDB entries with a remote. */
export async function vxlanEntries(dev: string): Promise<{ neighs: NeighEntry[]; fdb: FdbEntry[] }> {
  const [neighs, fdb] = await Promise.all([listNeighs(dev), listFdb(dev)]);
  return {
    neighs: neighs.filter((n) => n.state?.includes('PERMANENT') && n.lladdr),
    fdb: fdb.filter((f) => f.dst !== undefined),
  };
}

function parseIptablesSave(flavour: 'nft' | 'legacy', text: string): IptablesFlannel | undefined {
  const chains: Record<string, string[]> = {};
  const jumps: Record<string, string[]> = {};
  let table = '';
  let masquerades = false;
  let forwardPolicy: string | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) table = line.slice(1).trim();
    const decl = /^:(\S+) (\S+)/.exec(line);
    if (decl) {
      if (decl[1]!.startsWith('FLANNEL-')) (chains[table] ??= []).push(decl[1]!);
      if (table === 'filter' && decl[1] === 'FORWARD') forwardPolicy = decl[2];
    }
    const rule = /^-A (\S+) .*-j (\S+)/.exec(line);
    if (rule) {
      if (!rule[1]!.startsWith('FLANNEL-') && rule[2]!.startsWith('FLANNEL-'))
        (jumps[table] ??= []).push(line.trim());
      if (rule[1] === 'FLANNEL-POSTRTG' && rule[2] === 'MASQUERADE') masquerades = true;
    }
  }
  if (Object.keys(chains).length === 0 && Object.keys(jumps).length === 0) return undefined;
  return { flavour, chains, jumps, masquerades, forwardPolicy };
}

const saveTool = (flavour: 'nft' | 'legacy') => `/usr/sbin/iptables-${flavour}-save`;
const restoreTool = (flavour: 'nft' | 'legacy') => `/usr/sbin/iptables-${flavour}-restore`;

/**
 * Flannel's iptables rules in either flavour: flanneld drives whichever `iptables` the node has, so a
 * node may hold them in nf_tables (iptables-nft) or in the legacy x_tables.
 */
export async function findFlannelIptables(): Promise<IptablesFlannel[]> {
  const out: IptablesFlannel[] = [];
  for (const flavour of ['nft', 'legacy'] as const) {
    if (!existsSync(saveTool(flavour))) continue;
    const r = await run(saveTool(flavour), [], { allowFailure: true });
    if (r.code !== 0) continue; // e.g. no x_tables in this kernel
    const found = parseIptablesSave(flavour, r.stdout);
    if (found) out.push(found);
  }
  return out;
}

/** flanneld's nftables-mode tables (EnableNFTables), as "family name". */
export async function findFlannelNftTables(): Promise<string[]> {
  const r = await run('nft', ['-j', 'list', 'tables'], { allowFailure: true });
  if (r.code !== 0) return [];
  const doc = JSON.parse(r.stdout) as { nftables: { table?: { family: string; name: string } }[] };
  return doc.nftables
    .flatMap((x) => (x.table ? [x.table] : []))
    .filter((t) => /^flannel-ipv[46]$/.test(t.name))
    .map((t) => `${t.family} ${t.name}`);
}

/**
 * Removes Flannel's chains of the given tables in one iptables-restore transaction per flavour: the
 * jumps first, then the chains flushed and deleted. `keep` names chains to leave in place.
 */
export async function removeFlannelIptables(found: IptablesFlannel, keep: string[] = []): Promise<string[]> {
  const lines: string[] = [];
  const removed: string[] = [];
  for (const table of new Set([...Object.keys(found.chains), ...Object.keys(found.jumps)])) {
    const jumps = (found.jumps[table] ?? []).filter((j) => !keep.some((k) => j.endsWith(`-j ${k}`)));
    const chains = (found.chains[table] ?? []).filter((c) => !keep.includes(c));
    if (jumps.length + chains.length === 0) continue;
    lines.push(`*${table}`, ...jumps.map((j) => j.replace(/^-A /, '-D ')));
    for (const c of chains) lines.push(`-F ${c}`, `-X ${c}`);
    lines.push('COMMIT');
    removed.push(...chains.map((c) => `${table} ${c}`));
  }
  if (lines.length === 0) return [];
  await run(restoreTool(found.flavour), ['--noflush'], { input: lines.join('\n') + '\n' });
  return removed;
}

export async function removeNftTables(tables: string[]): Promise<void> {
  if (tables.length === 0) return;
  await run('nft', ['-f', '-'], { input: tables.map((t) => `delete table ${t}`).join('\n') + '\n' });
}

/** Deletes devices (a missing one is not an error: it may have gone with its owner). */
export async function removeLinks(names: string[]): Promise<void> {
  await batch(names.map((n) => `link del ${n}`));
}

/** Deletes routes exactly as listed. Returns the ones the kernel refused, with its message. */
export async function removeRoutes(routes: MainRoute[]): Promise<{ route: MainRoute; message: string }[]> {
  const lines = routes.map(
    (r) =>
      `route del ${r.type && r.type !== 'unicast' ? `${r.type} ` : ''}${r.dst}` +
      `${r.gateway ? ` via ${r.gateway}` : ''}${r.dev ? ` dev ${r.dev}` : ''}`,
  );
  return (await batch(lines)).flatMap((f) => {
    const route = routes[f.line - 1];
    return route ? [{ route, message: f.message }] : [];
  });
}

export interface RenameResult {
  /** live: renamed while up (kernel ≥ 6.2), nothing flushed; down-up: down, rename, up, entries re-added. */
  how: 'live' | 'down-up';
  /** Wall time of the kernel step, in milliseconds. */
  ms: number;
}

const isBusy = (message: string): boolean => /busy/i.test(message);

/**
 * Renames a VXLAN device in place, keeping its MAC, address, FDB and everything routed through it.
 * Kernels since 6.2 rename an up device; older ones answer EBUSY, and then the device goes down, is
 * renamed and comes up in one `ip -batch` that also puts back what going down flushed (its permanent
 * neighbours and the routes through it; FDB entries and addresses survive a down). `restore` is that
 * state read before, and `proto` the protocol the restored routes get (their new owner's).
 * WEFT_TAKEOVER_RENAME=down-up forces the older path, to measure it on a new kernel.
 */
export async function renameVxlan(
  from: string,
  to: string,
  restore: { neighs: NeighEntry[]; routes: MainRoute[] },
  proto: string,
): Promise<RenameResult> {
  const t0 = performance.now();
  if (process.env.WEFT_TAKEOVER_RENAME !== 'down-up') {
    const live = await batch([`link set dev ${from} name ${to}`]);
    if (live.length === 0) return { how: 'live', ms: performance.now() - t0 };
    if (!isBusy(live[0]!.message)) throw new Error(`cannot rename ${from} to ${to}: ${live[0]!.message}`);
  }
  const t1 = performance.now();
  const failures = await batch([
    `link set dev ${from} down`,
    `link set dev ${from} name ${to}`,
    `link set dev ${to} up`,
    ...restore.neighs.map((n) => `neigh replace ${n.dst} lladdr ${n.lladdr ?? ''} dev ${to} nud permanent`),
    ...restore.routes.map(
      (r) =>
        `route replace ${r.dst} via ${r.gateway ?? ''} dev ${to}${(r.flags ?? []).includes('onlink') ? ' onlink' : ''} proto ${proto}`,
    ),
  ]);
  if (failures.some((f) => f.line <= 3))
    throw new Error(`cannot rename ${from} to ${to}: ${failures.map((f) => f.message).join('; ')}`);
  return { how: 'down-up', ms: performance.now() - t1 };
}

/**
 * Processes of the caller's network namespace (a lab node is a namespace, not a host) for which
 * `match(comm, argv)` holds.
 */
export async function processesInThisNetns(
  match: (comm: string, argv: string[]) => boolean,
): Promise<number[]> {
  const mine = await readlink('/proc/self/ns/net').catch(() => undefined);
  const pids: number[] = [];
  for (const d of await readdir('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      const comm = (await readFile(`/proc/${d}/comm`, 'utf8')).trim();
      const argv = (await readFile(`/proc/${d}/cmdline`, 'utf8')).split('\0');
      if (!match(comm, argv)) continue;
      if ((await readlink(`/proc/${d}/ns/net`)) === mine) pids.push(Number(d));
    } catch {
      /* exited meanwhile */
    }
  }
  return pids;
}
