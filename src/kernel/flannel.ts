import { readdir, readFile, readlink } from 'node:fs/promises';
import { isBusy, isNotFound, KernelError } from './errors.js';
import { hasTool, runTool, type KernelTool } from './exec.js';
import { listFdb, listLinks, listNeighs, listRoutes } from './iproute.js';
import { kernelOps } from './kernel.js';
import { nftApply, nftList } from './nft.js';
import type { Op } from './ops.js';
import type { FdbEntry, NeighEntry, RouteEntry } from './types.js';

/**
 * The kernel side of taking a node over from Flannel (issue 14): finding what flanneld leaves in a
 * node's network namespace, renaming its VXLAN device, and removing its rules, routes and devices. It
 * reads with the kernel layer's queries and changes through its Ops (netlink or iproute2), asking the
 * kernel's answers through its predicates. Which object is Flannel's and in what order things happen is
 * decided by src/agent/takeover.ts. Names and shapes are flanneld's (reference/flannel.md §4.3, §5):
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

/** Rules of one iptables flavour (iptables-nft or iptables-legacy) in Flannel's chains. */
export interface IptablesFlannel {
  /** The save/restore tools of this flavour. */
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

/** The main table's routes, every protocol and type. */
export const listMainRoutes = (): Promise<RouteEntry[]> => listRoutes();

/** A VXLAN device's permanent neighbours and its FDB entries with a remote. */
export async function vxlanEntries(dev: string): Promise<{ neighs: NeighEntry[]; fdb: FdbEntry[] }> {
  const [neighs, fdb] = await Promise.all([listNeighs(dev), listFdb(dev)]);
  return {
    neighs: neighs.filter((n) => n.state?.includes('PERMANENT') && n.lladdr),
    fdb: fdb.filter((f) => f.dst !== undefined),
  };
}

// ------------------------------------------------------------------------------------------- rules

/** Flannel's chains and the jumps to them in an `iptables-save` listing; undefined when there are none. */
export function parseIptablesSave(flavour: 'nft' | 'legacy', text: string): IptablesFlannel | undefined {
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

const iptables = (flavour: 'nft' | 'legacy', verb: 'save' | 'restore'): KernelTool =>
  `iptables-${flavour}-${verb}`;

/**
 * Flannel's iptables rules in either flavour: flanneld drives whichever `iptables` the node has, so a
 * node may hold them in nf_tables (iptables-nft) or in the legacy x_tables.
 */
export async function findFlannelIptables(): Promise<IptablesFlannel[]> {
  const out: IptablesFlannel[] = [];
  for (const flavour of ['nft', 'legacy'] as const) {
    const save = iptables(flavour, 'save');
    if (!hasTool(save)) continue;
    const r = await runTool(save, []);
    if (r.code !== 0) continue; // e.g. no x_tables in this kernel: nothing of Flannel's there either
    const found = parseIptablesSave(flavour, r.stdout);
    if (found) out.push(found);
  }
  return out;
}

interface TablesJson {
  nftables: { table?: { family: string; name: string } }[];
}

/** flanneld's nftables-mode tables (EnableNFTables), as "family name". */
export async function findFlannelNftTables(): Promise<string[]> {
  const doc = await nftList<TablesJson>(['tables']);
  return (doc?.nftables ?? [])
    .flatMap((x) => (x.table ? [x.table] : []))
    .filter((t) => /^flannel-ipv[46]$/.test(t.name))
    .map((t) => `${t.family} ${t.name}`);
}

/**
 * Removes Flannel's chains in one iptables-restore transaction for the flavour: the jumps first, then
 * the chains flushed and deleted. `keep` names chains to leave in place. Returns "table chain" of each
 * chain removed; throws with the tool's answer when the transaction failed (then nothing changed).
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
  const tool = iptables(found.flavour, 'restore');
  const r = await runTool(tool, ['--noflush'], { input: lines.join('\n') + '\n' });
  if (r.code !== 0) throw new KernelError(`${tool} --noflush`, r.stderr.trim() || `exit ${String(r.code)}`);
  return removed;
}

/** Deletes nftables tables ("family name") in one transaction. */
export async function removeNftTables(tables: string[]): Promise<void> {
  if (tables.length === 0) return;
  await nftApply(tables.map((t) => `delete table ${t}`).join('\n') + '\n');
}

// ----------------------------------------------------------------------------- devices and routes

/** flanneld's netlink routes carry the kernel's default protocol, boot (which `ip -j` leaves out). */
export const FLANNEL_ROUTE_PROTO = 3;

/** Deletes devices; one that is gone already (with its owner, or by hand) is not a failure. */
export async function removeLinks(names: string[]): Promise<{ name: string; message: string }[]> {
  const failures = await kernelOps().execute(names.map((name): Op => ({ op: 'link-del', name })));
  return failures.filter((f) => !isNotFound(f)).map((f) => ({ name: names[f.index]!, message: f.message }));
}

/**
 * Deletes Flannel's routes exactly: destination, gateway and device as listed, and flanneld's
 * protocol (boot), so that a route weft has replaced meanwhile is never the one deleted. A route that
 * is gone already is not a failure. Returns the ones the kernel refused, with its answer.
 */
export async function removeRoutes(routes: RouteEntry[]): Promise<{ route: RouteEntry; message: string }[]> {
  const ops = routes.map((r): Op => ({
    op: 'route-del',
    dst: r.dst,
    ...(r.gateway !== undefined && { via: r.gateway }),
    ...(r.dev !== undefined && { dev: r.dev }),
    proto: FLANNEL_ROUTE_PROTO,
  }));
  const failures = await kernelOps().execute(ops);
  return failures.filter((f) => !isNotFound(f)).map((f) => ({ route: routes[f.index]!, message: f.message }));
}

export interface RenameResult {
  /** live: renamed while up (kernel ≥ 6.2), nothing flushed; down-up: down, rename, up, entries re-added. */
  how: 'live' | 'down-up';
  /** Wall time of the kernel step, in milliseconds. */
  ms: number;
}

/**
 * Renames a VXLAN device in place, keeping its MAC, address, FDB and everything routed through it.
 * Kernels since 6.2 rename an up device; older ones answer EBUSY, and then the device goes down, is
 * renamed and comes up in one run of Ops that also puts back what going down flushed (its permanent
 * neighbours and the routes through it; FDB entries and addresses survive a down). `restore` is that
 * state read before, and `proto` the protocol the restored routes get (their new owner's).
 * WEFT_TAKEOVER_RENAME=down-up forces the older path, to measure it on a new kernel.
 */
export async function renameVxlan(
  from: string,
  to: string,
  restore: { neighs: NeighEntry[]; routes: RouteEntry[] },
  proto: number,
): Promise<RenameResult> {
  const kernel = kernelOps();
  const t0 = performance.now();
  if (process.env.WEFT_TAKEOVER_RENAME !== 'down-up') {
    const [live] = await kernel.execute([{ op: 'link-rename', name: from, to }]);
    if (!live) return { how: 'live', ms: performance.now() - t0 };
    if (!isBusy(live)) throw new KernelError(live.command, live.message);
  }
  const t1 = performance.now();
  const steps: Op[] = [
    { op: 'link-set', name: from, up: false },
    { op: 'link-rename', name: from, to },
    { op: 'link-set', name: to, up: true },
  ];
  const failures = await kernel.execute([
    ...steps,
    ...restore.neighs.map((n): Op => ({ op: 'neigh-replace', ip: n.dst, lladdr: n.lladdr ?? '', dev: to })),
    ...restore.routes.map((r): Op => ({
      op: 'route-replace',
      dst: r.dst,
      ...(r.gateway !== undefined && { via: r.gateway }),
      dev: to,
      onlink: (r.flags ?? []).includes('onlink'),
      proto,
    })),
  ]);
  const failed = failures.find((f) => f.index < steps.length);
  if (failed) throw new KernelError(failed.command, failed.message);
  return { how: 'down-up', ms: performance.now() - t1 };
}

// ------------------------------------------------------------------------------------------ processes

/**
 * Processes of the caller's network namespace (a lab node is a namespace, not a host) for which
 * `match(comm, argv)` holds. Read from /proc; nothing is started.
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
