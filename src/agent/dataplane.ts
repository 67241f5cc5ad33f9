import { randomBytes } from 'node:crypto';
import type { Logger } from '../util/log.js';
import {
  batch,
  getLink,
  listFdb,
  listLinks,
  listNeighs,
  listRoutesByProto,
  listAddrs,
  type BatchFailure,
} from '../kernel/iproute.js';
import { Cidr, formatIPv4, parseIPv4, type IPv4 } from '../util/ipv4.js';
import { WeftError } from '../util/errors.js';
import { vxlanDeviceName, type Plan, type RouteSpec, type VtepSpec } from '../backend/types.js';

/**
 * The single owner of weft's kernel objects in a node: the VXLAN device `weft.<VNI>` (with its
 * neighbour and FDB entries) and every route with protocol WEFT_ROUTE_PROTO. It reconciles them to a
 * plan: reads what the kernel has, changes only what differs (a restart finds everything right and
 * touches nothing), removes what it owns and the plan no longer wants, and never looks at anything else.
 */
export const WEFT_ROUTE_PROTO = 87;

export interface ApplyReport {
  added: number;
  removed: number;
  unchanged: number;
  failures: { subject: string; command: string; message: string }[];
}

export interface VxlanParams {
  vni: number;
  port: number;
  local: IPv4;
  underlay: string;
  mtu: number;
  subnet: Cidr;
  /** The MAC to use when the device must be created (restart: the one already published). */
  mac: string | undefined;
}

export function randomMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0]! & 0xfe) | 0x02; // unicast, locally administered
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

const routeKey = (dst: string): string => (dst.includes('/') ? dst : `${dst}/32`);

export class DataPlane {
  constructor(private readonly log: Logger) {}

  /** The MAC of an existing VXLAN device that matches the parameters (so that a restart keeps it), if any. */
  async compatibleVxlanMac(p: Omit<VxlanParams, 'mac' | 'mtu' | 'subnet'>): Promise<string | undefined> {
    const link = await getLink(vxlanDeviceName(p.vni));
    return link && this.compatible(link.linkinfo, p) ? link.address : undefined;
  }

  private compatible(
    info: { info_kind?: string; info_data?: Record<string, unknown> } | undefined,
    p: Omit<VxlanParams, 'mac' | 'mtu' | 'subnet'>,
  ): boolean {
    const d = info?.info_data;
    return (
      info?.info_kind === 'vxlan' &&
      d !== undefined &&
      d.id === p.vni &&
      d.local === formatIPv4(p.local) &&
      d.link === p.underlay &&
      d.port === p.port &&
      d.learning === false
    );
  }

  /** Creates or adopts `weft.<VNI>`; returns its MAC (the VTEP MAC to publish). */
  async ensureVxlan(p: VxlanParams): Promise<string> {
    const name = vxlanDeviceName(p.vni);
    let link = await getLink(name);
    if (link && !this.compatible(link.linkinfo, p)) {
      this.log.warn(
        { device: name, found: link.linkinfo?.info_data },
        'existing VXLAN device does not match the configuration: recreating it',
      );
      await batch([`link del ${name}`]);
      link = undefined;
    }
    const cmds: string[] = [];
    if (!link) {
      const mac = p.mac ?? randomMac();
      cmds.push(
        `link add ${name} address ${mac} mtu ${p.mtu} type vxlan id ${p.vni} local ${formatIPv4(p.local)} dev ${p.underlay} dstport ${p.port} nolearning`,
      );
      // No IPv6 link-local address on the tunnel: it would only add kernel routes nobody uses.
      cmds.push(`link set ${name} addrgenmode none`);
      this.log.info({ device: name, mac, vni: p.vni, port: p.port }, 'creating VXLAN device');
    } else if (link.mtu !== p.mtu) cmds.push(`link set ${name} mtu ${p.mtu}`);
    // The device holds <subnet>.0/32: the source for node→pod traffic, without broadcast routes.
    const want = `${formatIPv4(p.subnet.ip)}/32`;
    const addrs = link
      ? ((await listAddrs(name))[0]?.addr_info ?? []).filter((a) => a.family === 'inet')
      : [];
    for (const a of addrs)
      if (`${a.local}/${a.prefixlen}` !== want) cmds.push(`addr del ${a.local}/${a.prefixlen} dev ${name}`);
    if (!addrs.some((a) => `${a.local}/${a.prefixlen}` === want)) cmds.push(`addr add ${want} dev ${name}`);
    if (!link || !link.flags.includes('UP')) cmds.push(`link set ${name} up`);
    const failures = await batch(cmds);
    if (failures.length > 0) {
      throw new WeftError(
        `cannot set up VXLAN device ${name}: ${failures.map((f) => f.message).join('; ')}`,
        {
          hint: 'the kernel needs the vxlan module, and no other VXLAN device may use the same VNI and port',
        },
      );
    }
    const now = await getLink(name);
    if (!now) throw new WeftError(`VXLAN device ${name} vanished after creation`);
    return now.address;
  }

  /** Removes weft's VXLAN devices (all, or all but `keep`): used when the backend no longer encapsulates. */
  async removeVxlanDevices(keep?: string): Promise<void> {
    const links = await listLinks();
    const doomed = links.filter(
      (l) => /^weft\.\d+$/.test(l.ifname) && l.linkinfo?.info_kind === 'vxlan' && l.ifname !== keep,
    );
    for (const l of doomed) this.log.info({ device: l.ifname }, 'removing VXLAN device no longer used');
    await batch(doomed.map((l) => `link del ${l.ifname}`));
  }

  /** Brings routes (proto WEFT_ROUTE_PROTO) and the VXLAN device's neighbours and FDB to the plan. */
  async apply(plan: Plan, vxlanDev: string | undefined): Promise<ApplyReport> {
    const report: ApplyReport = { added: 0, removed: 0, unchanged: 0, failures: [] };
    const haveRoutes = await listRoutesByProto(WEFT_ROUTE_PROTO);
    const [haveNeighs, haveFdb] =
      vxlanDev && (await getLink(vxlanDev))
        ? await Promise.all([listNeighs(vxlanDev), listFdb(vxlanDev)])
        : [[], []];

    const wantRoutes = new Map<string, RouteSpec>(plan.routes.map((r) => [r.dst.toString(), r]));
    const wantNeigh = new Map<string, VtepSpec>(plan.vteps.map((v) => [formatIPv4(v.neighIP), v]));
    const wantFdb = new Map<string, VtepSpec>(plan.vteps.map((v) => [v.mac, v]));

    const fdbAdd: string[] = [];
    const fdbDel: string[] = [];
    const ipAdd: string[] = [];
    const ipDel: string[] = [];
    const subjectOf = new Map<string, string>();

    if (vxlanDev) {
      const fdbHave = new Map(
        haveFdb.filter((f) => f.dst !== undefined).map((f) => [f.mac.toLowerCase(), f]),
      );
      for (const [mac, v] of wantFdb) {
        const cur = fdbHave.get(mac);
        if (cur && cur.dst === formatIPv4(v.remote)) report.unchanged++;
        else {
          const c = `fdb replace ${mac} dev ${vxlanDev} dst ${formatIPv4(v.remote)} self permanent`;
          fdbAdd.push(c);
          subjectOf.set(c, formatIPv4(v.remote));
        }
      }
      for (const [mac, cur] of fdbHave)
        if (!wantFdb.has(mac)) fdbDel.push(`fdb del ${mac} dev ${vxlanDev} dst ${cur.dst ?? ''} self`);

      const neighHave = new Map(
        haveNeighs.filter((n) => n.state?.includes('PERMANENT')).map((n) => [n.dst, n]),
      );
      for (const [ip, v] of wantNeigh) {
        const cur = neighHave.get(ip);
        if (cur && cur.lladdr?.toLowerCase() === v.mac) report.unchanged++;
        else {
          const c = `neigh replace ${ip} lladdr ${v.mac} dev ${vxlanDev} nud permanent`;
          ipAdd.push(c);
          subjectOf.set(c, ip);
        }
      }
      for (const [ip] of neighHave) if (!wantNeigh.has(ip)) ipDel.push(`neigh del ${ip} dev ${vxlanDev}`);
    }

    const routeHave = new Map(haveRoutes.map((r) => [routeKey(r.dst), r]));
    for (const [dst, r] of wantRoutes) {
      const cur = routeHave.get(dst);
      const same =
        cur &&
        cur.gateway === (r.via === undefined ? undefined : formatIPv4(r.via)) &&
        cur.dev === r.dev &&
        (cur.flags ?? []).includes('onlink') === r.onlink;
      if (same) report.unchanged++;
      else {
        // Routes go last among the additions, so the kernel never ARPs for a VXLAN gateway.
        const via = r.via === undefined ? '' : ` via ${formatIPv4(r.via)}`;
        const c = `route replace ${dst}${via} dev ${r.dev}${r.onlink ? ' onlink' : ''} proto ${WEFT_ROUTE_PROTO}`;
        ipAdd.push(c);
        subjectOf.set(c, dst);
      }
    }
    for (const [dst, cur] of routeHave) {
      if (!wantRoutes.has(dst))
        ipDel.unshift(
          `route del ${dst}${cur.gateway ? ` via ${cur.gateway}` : ''}${cur.dev ? ` dev ${cur.dev}` : ''} proto ${WEFT_ROUTE_PROTO}`,
        );
    }

    const note = (fs: BatchFailure[]) => {
      for (const f of fs)
        report.failures.push({
          subject: subjectOf.get(f.command) ?? f.command,
          command: f.command,
          message: f.message,
        });
    };
    note(await batch(fdbAdd, 'bridge'));
    note(await batch([...ipAdd, ...ipDel]));
    note(await batch(fdbDel, 'bridge'));
    report.added = fdbAdd.length + ipAdd.length;
    report.removed = fdbDel.length + ipDel.length;
    if (report.added + report.removed > 0) {
      this.log.info(
        {
          added: report.added,
          removed: report.removed,
          unchanged: report.unchanged,
          failures: report.failures.length,
        },
        'data path reconciled',
      );
    }
    return report;
  }
}

/** Parses "a.b.c.d" or throws a WeftError naming the flag. */
export function requireIPv4(text: string, what: string): IPv4 {
  const ip = parseIPv4(text);
  if (ip === undefined) throw new WeftError(`${what}: "${text}" is not an IPv4 address`);
  return ip;
}
