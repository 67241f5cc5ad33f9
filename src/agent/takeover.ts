import { readFile } from 'node:fs/promises';
import { parseSubnetEnv, type SubnetEnv } from '../config/subnet-env.js';
import {
  findFlannelIptables,
  findFlannelNftTables,
  FLANNEL_ROUTE_PROTO,
  listFlannelDevices,
  listMainRoutes,
  listVxlanLinks,
  processesInThisNetns,
  removeFlannelIptables,
  removeLinks,
  removeNftTables,
  removeRoutes,
  renameVxlan,
  vxlanEntries,
  type IptablesFlannel,
  type RenameResult,
  type VxlanLink,
} from '../kernel/flannel.js';
import type { FdbEntry, NeighEntry, RouteEntry } from '../kernel/types.js';
import { vtepOf, type Lease } from '../store/lease.js';
import { describeError, WeftError } from '../util/errors.js';
import { Cidr, parseIPv4 } from '../util/ipv4.js';
import type { Logger } from '../util/log.js';
import { vxlanDeviceName } from '../backend/types.js';
import { WEFT_ROUTE_PROTO } from './dataplane.js';

/**
 * Taking a node over from Flannel in place (issue 14, docs/migrating-from-flannel.md). Policy and order;
 * the kernel work is src/kernel/flannel.ts. The agent's data path (node-datapath.ts) runs the steps at
 * its own points of the start; the lease is the own lease's (own-lease.ts) like any other.
 *
 * Default: refuse. A node where Flannel's objects are found starts weft only with --take-over-flannel;
 * without it the agent exits with one line naming what it found and the flag. Rewriting a node's data
 * path is something an operator decides per node and per rollout, and a weft agent started by mistake on
 * a Flannel node (a DaemonSet scheduled too widely, flanneld meant to stay) must not tear it down.
 *
 * With the flag, in this order, so that packets keep flowing at every step:
 *   1. prepare     (before weft creates anything) refuse if flanneld still runs in this namespace, if
 *                  Flannel carries IPv6 here, if it masqueraded and weft would not, or if Flannel's lease
 *                  publishes another public IP; rename flannel.<VNI> to weft.<VNI> (a live rename on
 *                  kernels ≥ 6.2: MAC, address, neighbours, FDB and routes stay as they are, so peers'
 *                  entries for this node stay valid and no packet is lost).
 *   2. leaseHeld   the lease weft's lease manager found by public IP is Flannel's own (same subnet, same
 *                  attributes: no write); its first renewal comes when its TTL needs it, as for any
 *                  lease reused on a start (flanneld's 24 h etcd lease may be close to its end). The
 *                  peers Flannel programmed (the device's FDB) are in weft's first rule set, as on
 *                  every start (node-datapath.ts).
 *   3. afterRules  once weft's nftables table is installed: Flannel's iptables chains (either flavour)
 *                  and nftables tables are removed, except FLANNEL-FWD where FORWARD's policy is DROP
 *                  (an accept in weft's table cannot override a drop in another table).
 *   4. finish      after weft's first reconcile turned Flannel's routes into its own (route replace):
 *                  Flannel's routes nobody wants any more and its other devices are removed.
 * Every object adopted, kept or removed is logged.
 */

export interface TakeoverOptions {
  /** --take-over-flannel */
  allowed: boolean;
  usesVxlan: boolean;
  vni: number;
  port: number;
  iface: { name: string; ip: string };
  network: Cidr;
  subnetLen: number;
  ipMasq: boolean;
  subnetFile: string;
  /** The leases in the store (for Flannel's lease of this node). */
  leases: () => Promise<Lease[]>;
  log: Logger;
}

export interface TakeoverSummary {
  from: 'flannel';
  adopted?: { from: string; to: string; how: RenameResult['how']; ms: number; mac: string };
  lease?: { subnet: string; publicIP: string; vtepMac?: string; kept: boolean };
  removed: string[];
  kept: string[];
}

interface Findings {
  devices: { name: string; kind: string }[];
  /** The Flannel VXLAN device weft can adopt (same VNI, port, source and underlay). */
  adoptable: VxlanLink | undefined;
  /** A Flannel VXLAN device on weft's VNI and port that weft cannot adopt: it must go first. */
  conflicting: VxlanLink | undefined;
  /**
   * The tunnel device: Flannel's, or weft's when an interrupted takeover renamed it already. Its
   * permanent neighbours and FDB entries are read once there is a takeover to do (see `entries`).
   */
  tunnel: string | undefined;
  routes: RouteEntry[];
  iptables: IptablesFlannel[];
  nftTables: string[];
  env: SubnetEnv | undefined;
}

const isFlannelVxlan = (name: string): boolean => /^flannel\.\d+$/.test(name);

function describeRoute(r: RouteEntry): string {
  return `${r.type && r.type !== 'unicast' ? `${r.type} ` : ''}${r.dst}${r.gateway ? ` via ${r.gateway}` : ''}${r.dev ? ` dev ${r.dev}` : ''}`;
}

/** Refuses to start when another program's VXLAN device holds weft's VNI and port (the kernel allows one). */
export async function refuseForeignVxlan(o: { vni: number; port: number }): Promise<void> {
  const own = vxlanDeviceName(o.vni);
  const foreign = (await listVxlanLinks()).find(
    (l) => l.vni === o.vni && l.port === o.port && l.name !== own && !isFlannelVxlan(l.name),
  );
  if (foreign) {
    throw new WeftError(
      `VXLAN device ${foreign.name} (VNI ${o.vni}, UDP ${o.port}) belongs to another program and blocks ${own}`,
      {
        hint: `remove it with "ip link del ${foreign.name}" if nothing needs it, or set another Backend.VNI or Backend.Port in the network config`,
      },
    );
  }
}

export class FlannelTakeover {
  private readonly removed: string[] = [];
  private readonly kept: string[] = [];
  /** Flannel devices renamed or removed already. */
  private readonly gone = new Set<string>();
  private adopted: TakeoverSummary['adopted'];
  private rulesRemoved = false;
  private lease: TakeoverSummary['lease'];

  private constructor(
    private readonly o: TakeoverOptions,
    private readonly f: Findings,
    /** The tunnel's permanent neighbours and FDB entries before the takeover (logged, restored if need be). */
    private readonly entries: { neighs: NeighEntry[]; fdb: FdbEntry[] },
  ) {}

  /**
   * Looks for Flannel's objects. None: checks only that no foreign VXLAN device is in weft's way and
   * returns undefined. Some: refuses (see the class comment) or adopts Flannel's VXLAN device.
   */
  static async prepare(o: TakeoverOptions): Promise<FlannelTakeover | undefined> {
    const f = await discover(o);
    const found = inventory(f);
    if (found.length === 0) {
      if (o.usesVxlan) await refuseForeignVxlan(o);
      return undefined;
    }
    // Only now (a node with Flannel's objects): every process of the machine is looked at.
    const flanneld = await processesInThisNetns((comm) => comm === 'flanneld');
    if (flanneld.length > 0) {
      throw new WeftError(`flanneld is still running on this node (pid ${flanneld.join(', ')})`, {
        hint: 'stop it first: systemctl stop flanneld, or take the kube-flannel pod off this node',
      });
    }
    if (!o.allowed) {
      throw new WeftError(`Flannel's data path is on this node (${found.join(', ')})`, {
        hint: 'start weft with --take-over-flannel to adopt it in place, pods keeping their addresses, or remove it first; see docs/migrating-from-flannel.md',
      });
    }
    const v6 = f.devices.find((d) => d.name.startsWith('flannel-v6.'));
    if (v6) {
      throw new WeftError(`${v6.name} carries Flannel's IPv6 pod traffic, which weft does not serve`, {
        hint: 'keep Flannel on dual-stack nodes for now',
      });
    }
    if (!o.ipMasq && f.iptables.some((t) => t.masquerades)) {
      throw new WeftError(
        `Flannel masqueraded pod traffic leaving the cluster on this node (nat FLANNEL-POSTRTG), and weft was started without --ip-masq`,
        { hint: 'add --ip-masq, or pods lose their way out' },
      );
    }
    const entries = f.tunnel ? await vxlanEntries(f.tunnel) : { neighs: [], fdb: [] };
    const t = new FlannelTakeover(o, f, entries);
    await t.checkLease();
    if (o.usesVxlan) await refuseForeignVxlan(o);
    o.log.info({ found }, 'taking this node over from Flannel');
    await t.moveDevice();
    return t;
  }

  /** Flannel's lease must be the one weft's lease manager will find by this node's public IP. */
  private async checkLease(): Promise<void> {
    const subnet = this.flannelSubnet();
    if (!subnet) return;
    const leases = await this.o.leases();
    const held = leases.find((l) => l.subnet.equals(subnet));
    if (held && held.attrs.PublicIP !== this.o.iface.ip) {
      throw new WeftError(
        `Flannel's lease ${subnet.toString()} of this node publishes PublicIP ${held.attrs.PublicIP}, and weft would publish ${this.o.iface.ip}`,
        {
          hint: `start weft with --public-ip ${held.attrs.PublicIP} (or the --iface Flannel used), so that it keeps the lease`,
        },
      );
    }
    if (!held)
      this.o.log.warn(
        { subnet: subnet.toString() },
        "Flannel's lease of this node has expired: weft claims the same subnet again (it is in the subnet file)",
      );
  }

  /** The node's subnet as Flannel left it in the subnet file (FLANNEL_SUBNET). */
  private flannelSubnet(): Cidr | undefined {
    return this.f.env?.subnet;
  }

  /** Adopts flannel.<VNI> as weft.<VNI>, or removes a Flannel device that would block weft's. */
  private async moveDevice(): Promise<void> {
    const { adoptable, conflicting, routes } = this.f;
    const entries = this.entries;
    if (adoptable && this.o.usesVxlan) {
      const to = vxlanDeviceName(this.o.vni);
      const through = routes.filter((r) => r.dev === adoptable.name && r.gateway);
      const r = await renameVxlan(
        adoptable.name,
        to,
        { neighs: entries.neighs, routes: through },
        WEFT_ROUTE_PROTO,
      );
      this.gone.add(adoptable.name);
      // Test hook: the agent dies right after the rename, as a crash would (the next start finishes).
      if (process.env.WEFT_TAKEOVER_FAULT === 'after-rename') process.kill(process.pid, 'SIGKILL');
      this.adopted = {
        from: adoptable.name,
        to,
        how: r.how,
        ms: Math.round(r.ms * 100) / 100,
        mac: adoptable.mac,
      };
      this.o.log.info(
        {
          device: to,
          was: adoptable.name,
          mac: adoptable.mac,
          how: r.how,
          ms: this.adopted.ms,
          neighbours: entries.neighs.map((n) => `${n.dst} lladdr ${n.lladdr ?? ''}`),
          fdb: entries.fdb.map((e) => `${e.mac} dst ${e.dst ?? ''}`),
          routes: through.map(describeRoute),
        },
        `adopted Flannel's ${adoptable.name} as ${to} (${r.how === 'live' ? 'renamed while up' : 'down, renamed, up, entries restored'}; MAC kept, so peers' entries stay valid)`,
      );
      return;
    }
    if (conflicting && this.o.usesVxlan) {
      // Same VNI and port but another source or underlay: it must go before weft's device can exist.
      const [failed] = await removeLinks([conflicting.name]);
      if (failed)
        throw new WeftError(`cannot remove Flannel's ${conflicting.name}: ${failed.message}`, {
          hint: `it holds weft's VNI ${this.o.vni} and UDP ${this.o.port}: remove it by hand (ip link del ${conflicting.name})`,
        });
      this.gone.add(conflicting.name);
      this.note(
        `device ${conflicting.name}`,
        'cannot be adopted (other source address or underlay): removed',
      );
    }
  }

  /** The lease weft holds after its first acquisition: Flannel's, kept as it was, or (logged) another. */
  leaseHeld(lease: Lease): void {
    const was = this.flannelSubnet();
    const kept = was === undefined || was.equals(lease.subnet);
    this.lease = {
      subnet: lease.subnet.toString(),
      publicIP: lease.attrs.PublicIP,
      vtepMac: vtepOf(lease.attrs)?.mac,
      kept,
    };
    if (kept) this.o.log.info(this.lease, "kept Flannel's lease: same subnet, same PublicIP, same VTEP MAC");
    else
      this.o.log.warn(
        { flannel: was!.toString(), weft: lease.subnet.toString() },
        "weft got another subnet than Flannel's: pods Flannel attached keep addresses outside this node's lease until they are re-created",
      );
  }

  /** Removes Flannel's rules; called once weft's own rules are installed (the first time only). */
  async afterRules(): Promise<void> {
    if (this.rulesRemoved) return;
    this.rulesRemoved = true;
    for (const ipt of this.f.iptables) {
      const keep = keptChains(ipt);
      for (const k of keep)
        this.keep(
          `iptables-${ipt.flavour} filter ${k}`,
          `FORWARD's policy is ${ipt.forwardPolicy}: weft's nftables accept cannot override another table's drop`,
        );
      try {
        for (const c of await removeFlannelIptables(ipt, keep))
          this.note(`iptables-${ipt.flavour} chain ${c}`, 'removed (weft table ip weft is in place)');
        for (const [table, jumps] of Object.entries(ipt.jumps))
          for (const j of jumps)
            if (!keep.some((k) => j.endsWith(`-j ${k}`)))
              this.note(`iptables-${ipt.flavour} ${table} rule "${j}"`, 'removed');
      } catch (e) {
        this.o.log.error(`cannot remove Flannel's iptables-${ipt.flavour} rules: ${describeError(e)}`);
      }
    }
    if (this.f.nftTables.length > 0) {
      await removeNftTables(this.f.nftTables).catch((e: unknown) =>
        this.o.log.error(`cannot remove Flannel's nftables tables: ${describeError(e)}`),
      );
      for (const t of this.f.nftTables) this.note(`nftables table ${t}`, 'removed');
    }
  }

  /** After weft's first reconcile: Flannel's routes weft did not take over, then its other devices. */
  async finish(): Promise<void> {
    const now = await listMainRoutes();
    const same = (a: RouteEntry, b: RouteEntry) =>
      a.dst === b.dst &&
      a.gateway === b.gateway &&
      (a.type ?? '') === (b.type ?? '') &&
      (a.protocol ?? 'boot') === (b.protocol ?? 'boot');
    let converted = 0;
    const stale: RouteEntry[] = [];
    for (const r of this.f.routes) {
      const a = this.adopted;
      const dev = a && r.dev === a.from ? a.to : r.dev;
      const cur = now.find((x) => x.dst === r.dst && (x.type ?? '') === (r.type ?? ''));
      if (!cur) continue;
      if (cur.protocol === String(WEFT_ROUTE_PROTO)) converted++;
      else if (same(cur, r) && (cur.dev ?? '') === (dev ?? '')) stale.push(cur);
    }
    if (converted > 0)
      this.o.log.info(
        { routes: converted },
        "Flannel's routes to live peers are weft's now (route replace, no gap)",
      );
    const refused = await removeRoutes(stale);
    for (const r of stale) {
      const why = refused.find((x) => x.route === r);
      if (why) this.o.log.error(`cannot remove Flannel's route ${describeRoute(r)}: ${why.message}`);
      else this.note(`route ${describeRoute(r)}`, 'removed (no lease wants it)');
    }
    if (this.adopted) {
      // weft's reconcile pruned the entries of peers without a lease (Flannel leaves them: #2554).
      const left = await vxlanEntries(this.adopted.to);
      for (const n of this.entries.neighs)
        if (!left.neighs.some((x) => x.dst === n.dst))
          this.note(
            `neighbour ${n.dst} lladdr ${n.lladdr ?? ''}`,
            'removed by the reconcile (no lease wants it)',
          );
      for (const e of this.entries.fdb)
        if (!left.fdb.some((x) => x.mac.toLowerCase() === e.mac.toLowerCase()))
          this.note(`FDB entry ${e.mac} dst ${e.dst ?? ''}`, 'removed by the reconcile (no lease wants it)');
    }
    const doomed = this.f.devices.map((d) => d.name).filter((n) => !this.gone.has(n));
    const refusedLinks = await removeLinks(doomed);
    for (const d of doomed) {
      const why = refusedLinks.find((x) => x.name === d);
      if (why) this.o.log.error(`cannot remove Flannel's device ${d}: ${why.message}`);
      else this.note(`device ${d}`, 'removed (weft carries the traffic)');
    }
    this.o.log.info(this.summary(), 'took this node over from Flannel');
  }

  summary(): TakeoverSummary {
    return {
      from: 'flannel',
      ...(this.adopted && { adopted: this.adopted }),
      ...(this.lease && { lease: this.lease }),
      removed: this.removed,
      kept: this.kept,
    };
  }

  private note(object: string, what: string): void {
    this.removed.push(object);
    this.o.log.info({ object }, `Flannel's ${object}: ${what}`);
  }

  private keep(object: string, why: string): void {
    this.kept.push(object);
    this.o.log.warn({ object }, `kept Flannel's ${object}: ${why}`);
  }
}

/**
 * Flannel's chains weft keeps: FLANNEL-FWD where FORWARD's policy is not ACCEPT (Docker sets DROP). An
 * accept in weft's nftables table cannot override another table's drop, so pod traffic needs it.
 */
function keptChains(ipt: IptablesFlannel): string[] {
  return ipt.forwardPolicy !== undefined && ipt.forwardPolicy !== 'ACCEPT' ? ['FLANNEL-FWD'] : [];
}

/**
 * What of Flannel's is on this node, in words (empty: nothing). Chains weft keeps on purpose do not
 * count: a node weft took over starts again without --take-over-flannel.
 */
function inventory(f: Findings): string[] {
  const devices = f.devices.map((d) => {
    const v =
      f.adoptable?.name === d.name ? f.adoptable : f.conflicting?.name === d.name ? f.conflicting : undefined;
    return v ? `${d.name} VNI ${v.vni} UDP ${v.port}` : `${d.name} (${d.kind})`;
  });
  const rules: string[] = [];
  for (const t of f.iptables) {
    const kept = keptChains(t);
    const chains = Object.entries(t.chains).flatMap(([table, cs]) =>
      cs.filter((c) => !kept.includes(c)).map((c) => `${table} ${c}`),
    );
    if (chains.length > 0) rules.push(`iptables-${t.flavour} chains ${chains.join(' and ')}`);
  }
  for (const t of f.nftTables) rules.push(`nftables table ${t}`);
  // Routes alone are no sign of Flannel (an operator's route looks the same); with the rest, they are its.
  if (devices.length + rules.length === 0) return [];
  const routes = f.routes.length > 0 ? [`${f.routes.length} route${f.routes.length > 1 ? 's' : ''}`] : [];
  return [...devices, ...routes, ...rules];
}

async function readEnv(path: string): Promise<SubnetEnv | undefined> {
  try {
    return parseSubnetEnv(await readFile(path, 'utf8'), path);
  } catch {
    return undefined;
  }
}

/** Reads everything of Flannel's in this namespace. */
async function discover(o: TakeoverOptions): Promise<Findings> {
  const [devices, vxlans, routes, iptables, nftTables, env] = await Promise.all([
    listFlannelDevices(),
    listVxlanLinks(),
    listMainRoutes(),
    findFlannelIptables(),
    findFlannelNftTables(),
    readEnv(o.subnetFile),
  ]);
  const flannelVx = vxlans.filter((v) => isFlannelVxlan(v.name));
  const mine = flannelVx.find((v) => v.vni === o.vni && v.port === o.port);
  const adoptable =
    mine &&
    !mine.learning &&
    mine.local === o.iface.ip &&
    mine.underlay === o.iface.name &&
    !vxlans.some((v) => v.name === vxlanDeviceName(o.vni))
      ? mine
      : undefined;
  const tunnel = mine ?? vxlans.find((v) => v.name === vxlanDeviceName(o.vni));
  const flannelDevs = new Set(devices.map((d) => d.name));
  const podSubnet = (dst: string) => {
    const c = Cidr.parse(dst);
    return c !== undefined && c.len === o.subnetLen && o.network.containsCidr(c);
  };
  // flanneld's netlink routes carry the default protocol, boot (which `ip -j` leaves out).
  const byFlanneld = (r: RouteEntry) => r.protocol === undefined || r.protocol === 'boot';
  const flannelRoutes = routes.filter(
    (r) =>
      byFlanneld(r) &&
      ((r.dev !== undefined && flannelDevs.has(r.dev)) ||
        // host-gw: a peer's pod subnet via its public IP on the underlay
        (r.dev === o.iface.name &&
          r.gateway !== undefined &&
          podSubnet(r.dst) &&
          parseIPv4(r.gateway) !== undefined) ||
        // --ip-blackhole-route: the node's own subnet
        (r.type === 'blackhole' && podSubnet(r.dst))),
  );
  return {
    devices,
    adoptable,
    conflicting: mine && !adoptable ? mine : undefined,
    tunnel: tunnel?.name,
    routes: flannelRoutes,
    iptables,
    nftTables,
    env,
  };
}

/** `node …/weft.js agent …` or `weft agent …`. */
const isWeftAgent = (_comm: string, argv: string[]): boolean =>
  argv.some((a, i) => /(^|\/)weft(\.js)?$/.test(a) && argv[i + 1] === 'agent');

/**
 * Rollback, `weft hand-back-to-flannel`: with the agent stopped (--keep-data-path), weft.<VNI> becomes
 * flannel.<VNI> again (same MAC, entries and routes), so that flanneld finds a compatible device and
 * reuses it instead of failing on the VNI weft's device holds. weft's nftables table stays until
 * flanneld's rules are in: `--finish` then removes it.
 */
export async function handBackToFlannel(o: {
  finish: boolean;
  removeWeftRules: () => Promise<void>;
  log: Logger;
}): Promise<string[]> {
  const agents = await processesInThisNetns(isWeftAgent);
  if (agents.length > 0) {
    throw new WeftError(`the weft agent is still running on this node (pid ${agents.join(', ')})`, {
      hint: 'stop it first (it must have been started with --keep-data-path so that the data path stays)',
    });
  }
  const lines: string[] = [];
  if (o.finish) {
    const [ipt, nft] = await Promise.all([findFlannelIptables(), findFlannelNftTables()]);
    if (ipt.length === 0 && nft.length === 0)
      lines.push("warning: Flannel's rules are not on this node: is flanneld up (with --ip-masq)?");
    await o.removeWeftRules();
    lines.push('removed nftables table ip weft: Flannel has the node back');
    return lines;
  }
  const weft = (await listVxlanLinks()).filter((l) => /^weft\.\d+$/.test(l.name));
  if (weft.length === 0) lines.push('no weft VXLAN device on this node: nothing to rename');
  const routes = await listMainRoutes();
  for (const dev of weft) {
    const to = `flannel.${dev.vni}`;
    const entries = await vxlanEntries(dev.name);
    const r = await renameVxlan(
      dev.name,
      to,
      { neighs: entries.neighs, routes: routes.filter((x) => x.dev === dev.name && x.gateway) },
      FLANNEL_ROUTE_PROTO,
    );
    lines.push(`renamed ${dev.name} to ${to} (${r.how}, ${r.ms.toFixed(2)} ms; MAC ${dev.mac} kept)`);
  }
  lines.push(
    "now start flanneld; once it is up, run `weft hand-back-to-flannel --finish` to remove weft's nftables table",
  );
  o.log.debug({ lines }, 'handed back to Flannel');
  return lines;
}
