import type { Plan, RouteSpec, VtepSpec } from '../backend/types.js';
import type { OpFailure } from '../kernel/batch.js';
import type { KernelEvent } from '../kernel/monitor.js';
import type { Op } from '../kernel/ops.js';
import { routeKey, type FdbEntry, type NeighEntry, type RouteEntry } from '../kernel/types.js';
import { formatIPv4 } from '../util/ipv4.js';

/**
 * The data plane's reconcile as pure functions over `ip -j` listings: what weft owns in them, the
 * difference to a plan as Ops, what the kernel holds after some of them were applied, and whether a
 * kernel event contradicts what weft believes is there. No kernel access here: dataplane.ts reads,
 * executes and decides when to read again.
 *
 * Ownership: a route of the main table with protocol WEFT_ROUTE_PROTO; on weft's VXLAN device, a
 * permanent neighbour, and an FDB entry with a remote (dst) for a unicast MAC. Anything else — other
 * protocols, dynamic neighbours, an all-zero flooding entry — is someone else's and never touched.
 */
export const WEFT_ROUTE_PROTO = 87;
const PROTO = String(WEFT_ROUTE_PROTO);

/** What the kernel holds, as the listings return it. */
export interface Observed {
  /** Main-table routes (`ip -j route show`, or the proto-87 listing through ownRoutesListing). */
  routes: RouteEntry[];
  /** The VXLAN device that `neighs` and `fdb` are of; undefined when no VXLAN device is in use. */
  vxlanDev: string | undefined;
  neighs: NeighEntry[];
  fdb: FdbEntry[];
}

export const emptyObserved = (vxlanDev?: string): Observed => ({ routes: [], vxlanDev, neighs: [], fdb: [] });

export const isOwnRoute = (r: RouteEntry): boolean =>
  r.protocol === PROTO && (r.type === undefined || r.type === 'unicast');

/**
 * `ip -j route show proto 87` leaves out the protocol it filtered by (and a full listing leaves it
 * out for "boot" routes): this puts it back, so that the listing reads as weft's routes.
 */
export const ownRoutesListing = (routes: readonly RouteEntry[]): RouteEntry[] =>
  routes.map((r) => ({ ...r, protocol: PROTO }));
export const isOwnNeigh = (n: NeighEntry): boolean => (n.state ?? []).includes('PERMANENT');
/** A unicast, non-zero MAC with a remote: what weft writes (an all-zero entry floods, a multicast one too). */
export const isOwnFdb = (f: { mac: string; dst?: string }): boolean =>
  f.dst !== undefined && f.mac !== '00:00:00:00:00:00' && (parseInt(f.mac.slice(0, 2), 16) & 1) === 0;

/** weft's objects in a listing, keyed the way the diff compares them, and the devices they hang on. */
export interface Owned {
  vxlanDev: string | undefined;
  routes: Map<string, RouteEntry>;
  neighs: Map<string, NeighEntry>;
  fdb: Map<string, FdbEntry>;
  /** A change to one of these (down, deleted, re-addressed) may flush weft's objects silently. */
  devices: Set<string>;
}

export function owned(o: Observed): Owned {
  const routes = new Map(o.routes.filter(isOwnRoute).map((r) => [routeKey(r.dst), r]));
  const devices = new Set([...routes.values()].map((r) => r.dev).filter((d): d is string => d !== undefined));
  if (o.vxlanDev) devices.add(o.vxlanDev);
  return {
    vxlanDev: o.vxlanDev,
    routes,
    neighs: new Map(o.neighs.filter(isOwnNeigh).map((n) => [n.dst, n])),
    fdb: new Map(o.fdb.filter(isOwnFdb).map((f) => [f.mac.toLowerCase(), f])),
    devices,
  };
}

/** An Op and what it is about, in words for the log ("10.244.2.0/24", a peer's public IP). */
export interface PlannedOp {
  op: Op;
  subject: string;
}

export interface Diff {
  ops: PlannedOp[];
  added: number;
  removed: number;
  unchanged: number;
}

/** A route's next hop as the listings print it; none for a device route (udp: into the TUN device). */
const gatewayOf = (r: RouteSpec): string | undefined => (r.via === undefined ? undefined : formatIPv4(r.via));

const sameRoute = (cur: RouteEntry | undefined, r: RouteSpec): boolean =>
  cur !== undefined &&
  cur.gateway === gatewayOf(r) &&
  cur.dev === r.dev &&
  (cur.flags ?? []).includes('onlink') === r.onlink;

/**
 * The Ops that bring the kernel from `observed` to `plan`, in a safe order: FDB entries, neighbours,
 * then routes (so the kernel never ARPs for a VXLAN gateway), then the removals, routes first.
 * Neighbours and FDB entries are diffed only when `vxlanDev` is the device they were listed from.
 */
export function diff(plan: Plan, observed: Observed | Owned, vxlanDev: string | undefined): Diff {
  const have = 'devices' in observed ? observed : owned(observed);
  const fdbAdd: PlannedOp[] = [];
  const neighAdd: PlannedOp[] = [];
  const routeAdd: PlannedOp[] = [];
  const routeDel: PlannedOp[] = [];
  const neighDel: PlannedOp[] = [];
  const fdbDel: PlannedOp[] = [];
  let unchanged = 0;

  if (vxlanDev) {
    const listed = have.vxlanDev === vxlanDev;
    const fdbHave = listed ? have.fdb : new Map<string, FdbEntry>();
    const neighHave = listed ? have.neighs : new Map<string, NeighEntry>();
    const wantFdb = new Map<string, VtepSpec>(plan.vteps.map((v) => [v.mac.toLowerCase(), v]));
    const wantNeigh = new Map<string, VtepSpec>(plan.vteps.map((v) => [formatIPv4(v.neighIP), v]));
    for (const [mac, v] of wantFdb) {
      const dst = formatIPv4(v.remote);
      if (fdbHave.get(mac)?.dst === dst) unchanged++;
      else fdbAdd.push({ op: { op: 'fdb-replace', mac, dev: vxlanDev, dst }, subject: dst });
    }
    for (const [mac, cur] of fdbHave)
      if (!wantFdb.has(mac))
        fdbDel.push({ op: { op: 'fdb-del', mac, dev: vxlanDev, dst: cur.dst }, subject: mac });
    for (const [ip, v] of wantNeigh) {
      const mac = v.mac.toLowerCase();
      if (neighHave.get(ip)?.lladdr?.toLowerCase() === mac) unchanged++;
      else neighAdd.push({ op: { op: 'neigh-replace', ip, lladdr: mac, dev: vxlanDev }, subject: ip });
    }
    for (const ip of neighHave.keys())
      if (!wantNeigh.has(ip)) neighDel.push({ op: { op: 'neigh-del', ip, dev: vxlanDev }, subject: ip });
  }

  const wantRoutes = new Map<string, RouteSpec>(plan.routes.map((r) => [r.dst.toString(), r]));
  for (const [dst, r] of wantRoutes) {
    if (sameRoute(have.routes.get(dst), r)) unchanged++;
    else
      routeAdd.push({
        op: {
          op: 'route-replace',
          dst,
          ...(r.via !== undefined && { via: formatIPv4(r.via) }),
          dev: r.dev,
          onlink: r.onlink,
          proto: WEFT_ROUTE_PROTO,
        },
        subject: dst,
      });
  }
  for (const [dst, cur] of have.routes)
    if (!wantRoutes.has(dst))
      routeDel.push({
        op: { op: 'route-del', dst, via: cur.gateway, dev: cur.dev, proto: WEFT_ROUTE_PROTO },
        subject: dst,
      });

  return {
    ops: [...fdbAdd, ...neighAdd, ...routeAdd, ...routeDel, ...neighDel, ...fdbDel],
    added: fdbAdd.length + neighAdd.length + routeAdd.length,
    removed: routeDel.length + neighDel.length + fdbDel.length,
    unchanged,
  };
}

/**
 * What the kernel holds after `ops` were executed and `failures` failed: the succeeded Ops applied to
 * `observed`, the failed ones not. (After a failure the caller re-reads anyway: a failed Op may have
 * half-happened.)
 */
export function afterApply(
  observed: Observed,
  vxlanDev: string | undefined,
  ops: readonly Op[],
  failures: readonly OpFailure[],
): Observed {
  const failed = new Set(failures.map((f) => f.index));
  const routes = new Map(
    observed.routes.map((r) => [routeKey(r.dst) + (isOwnRoute(r) ? '' : ' foreign'), r]),
  );
  const listed = observed.vxlanDev === vxlanDev;
  const neighs = new Map(listed ? observed.neighs.map((n) => [n.dst, n]) : []);
  const fdb = new Map(listed ? observed.fdb.map((f) => [`${f.mac.toLowerCase()} ${f.dst ?? ''}`, f]) : []);
  ops.forEach((o, i) => {
    if (failed.has(i)) return;
    switch (o.op) {
      case 'route-replace':
        routes.set(routeKey(o.dst), {
          dst: o.dst,
          ...(o.via !== undefined && { gateway: o.via }),
          ...(o.dev !== undefined && { dev: o.dev }),
          protocol: String(o.proto ?? ''),
          flags: o.onlink ? ['onlink'] : [],
        });
        break;
      case 'route-del':
        routes.delete(routeKey(o.dst));
        break;
      case 'neigh-replace':
        neighs.set(o.ip, { dst: o.ip, lladdr: o.lladdr, state: ['PERMANENT'] });
        break;
      case 'neigh-del':
        neighs.delete(o.ip);
        break;
      case 'fdb-replace':
        for (const k of [...fdb.keys()]) if (k.startsWith(`${o.mac} `)) fdb.delete(k);
        fdb.set(`${o.mac} ${o.dst}`, { mac: o.mac, dst: o.dst, flags: ['self'], state: 'permanent' });
        break;
      case 'fdb-del':
        fdb.delete(`${o.mac} ${o.dst ?? ''}`);
        break;
      default:
        break; // links and addresses are not part of the reconciled listings
    }
  });
  return { routes: [...routes.values()], vxlanDev, neighs: [...neighs.values()], fdb: [...fdb.values()] };
}

/**
 * Whether a kernel event agrees with `model` (weft's objects as read and applied last, see owned()):
 * true for events about objects weft does not own, and for the echo of weft's own changes; false when
 * the kernel may now differ from the model, which must then be read again.
 */
export function agrees(model: Owned, e: KernelEvent): boolean {
  switch (e.kind) {
    case 'lost':
      return false;
    case 'link':
      return !model.devices.has(e.ifname);
    case 'addr':
      return !model.devices.has(e.dev);
    case 'route': {
      if ((e.table !== undefined && e.table !== 'main') || (e.type !== undefined && e.type !== 'unicast'))
        return true;
      const cur = model.routes.get(routeKey(e.dst));
      const ours = e.protocol === PROTO;
      if (e.deleted) return !ours || cur === undefined;
      if (!ours) return cur === undefined; // a foreign route where weft has one: which one won?
      return (
        cur !== undefined &&
        cur.gateway === e.gateway &&
        cur.dev === e.dev &&
        (cur.flags ?? []).includes('onlink') === e.onlink
      );
    }
    case 'neigh': {
      if (e.dev !== model.vxlanDev) return true;
      const cur = model.neighs.get(e.dst);
      if (e.deleted || !e.state.includes('PERMANENT')) return cur === undefined;
      return cur?.lladdr?.toLowerCase() === e.lladdr;
    }
    case 'fdb': {
      if (e.dev !== model.vxlanDev || !isOwnFdb(e)) return true;
      const cur = model.fdb.get(e.mac);
      return e.deleted ? cur?.dst !== e.dst : cur?.dst === e.dst;
    }
  }
}
