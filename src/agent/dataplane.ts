import { randomBytes } from 'node:crypto';
import type { Logger } from '../util/log.js';
import type { OpFailure } from '../kernel/batch.js';
import { getLink, listAddrs, listLinks, query, Q } from '../kernel/iproute.js';
import { kernelOps, whyNotNetlink, type OpExecutor } from '../kernel/kernel.js';
import { watchKernel, type KernelEvent, type Watch } from '../kernel/monitor.js';
import type { Op } from '../kernel/ops.js';
import { Cidr, formatIPv4, parseIPv4, type IPv4 } from '../util/ipv4.js';
import { WeftError } from '../util/errors.js';
import { vxlanDeviceName, type Plan } from '../backend/types.js';
import {
  afterApply,
  agrees,
  diff,
  owned,
  ownRoutesListing,
  WEFT_ROUTE_PROTO,
  type Observed,
  type Owned,
  type PlannedOp,
} from './dataplane-diff.js';

export { WEFT_ROUTE_PROTO };

/**
 * The single owner of weft's kernel objects in a node: the VXLAN device `weft.<VNI>` (with its
 * neighbour and FDB entries) and every route with protocol WEFT_ROUTE_PROTO. It reconciles them to a
 * plan: the difference between the plan and what the kernel holds (dataplane-diff.ts, pure) becomes
 * Ops that the kernel layer carries out; a restart finds everything right and touches nothing; what
 * weft owns and the plan no longer wants is removed; nothing else is ever looked at.
 *
 * Dirty tracking, as Calico's route table does it: the kernel is read only when it may differ from
 * what the last pass observed and applied — on the first pass, after a failure, after a kernel event
 * that contradicts the model (the kernel's change events are followed, see kernel/monitor.ts), when
 * the VXLAN device changes, and on a slow safety resync. Otherwise a pass diffs against the model and
 * costs no kernel access at all when nothing changed. A kernel change under weft's feet (an operator
 * deleting a route) is repaired right away, by re-applying the last plan.
 */

export interface ApplyReport {
  added: number;
  removed: number;
  unchanged: number;
  failures: { subject: string; command: string; message: string }[];
}

export interface ApplyOptions {
  /** Read the kernel before this pass whatever the model says. */
  resync?: boolean;
}

export interface DataPlaneOptions {
  /** The safety resync: read the kernel at least this often even when no event said anything. */
  safetyResyncSeconds?: number;
  /** Follow kernel change events; false reads the kernel before every pass. Default true. */
  events?: boolean;
  /** How Ops are carried out (default: netlink when available, else iproute2). */
  kernel?: OpExecutor;
}

const SAFETY_RESYNC_SECONDS = 300;
/** A burst of foreign changes (a script deleting routes) is repaired in one pass. */
const REPAIR_DELAY_MS = 100;
const WATCH_RESTART_MS = 5000;

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

export class DataPlane {
  private readonly kernel: OpExecutor;
  private readonly safetyResyncMs: number;
  private readonly events: boolean;
  /** What the last pass observed and applied, and when the kernel was last read. */
  private model: { observed: Observed; owned: Owned; readAt: number } | undefined;
  /** The kernel may differ from the model: read it on the next pass. */
  private dirty = true;
  private watch: Watch | undefined;
  private applying = false;
  private heldEvents: KernelEvent[] = [];
  private queue: Promise<unknown> = Promise.resolve();
  private last: { plan: Plan; vxlanDev: string | undefined } | undefined;
  private repairTimer: NodeJS.Timeout | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  /** Passes, those that read the kernel, and repairs after a kernel event (for status and benchmarks). */
  readonly stats = { passes: 0, reads: 0, repairs: 0 };

  constructor(
    private readonly log: Logger,
    opts: DataPlaneOptions = {},
  ) {
    this.kernel = opts.kernel ?? kernelOps();
    this.safetyResyncMs = (opts.safetyResyncSeconds ?? SAFETY_RESYNC_SECONDS) * 1000;
    this.events = opts.events ?? true;
    const why = whyNotNetlink();
    if (this.kernel.name === 'iproute2' && why !== undefined)
      this.log.info(
        `kernel changes go through iproute2 processes: the netlink addon is unavailable (${why})`,
      );
  }

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
    this.dirty = true; // the device's neighbours and FDB go with it when it is re-created
    let link = await getLink(name);
    if (link && !this.compatible(link.linkinfo, p)) {
      this.log.warn(
        { device: name, found: link.linkinfo?.info_data },
        'existing VXLAN device does not match the configuration: recreating it',
      );
      await this.kernel.execute([{ op: 'link-del', name }]);
      link = undefined;
    }
    const ops: Op[] = [];
    if (!link) {
      const mac = p.mac ?? randomMac();
      ops.push({
        op: 'link-add-vxlan',
        name,
        address: mac,
        mtu: p.mtu,
        vni: p.vni,
        local: formatIPv4(p.local),
        dev: p.underlay,
        port: p.port,
      });
      // No IPv6 link-local address on the tunnel: it would only add kernel routes nobody uses.
      ops.push({ op: 'link-set', name, noIpv6LinkLocal: true });
      this.log.info({ device: name, mac, vni: p.vni, port: p.port }, 'creating VXLAN device');
    } else if (link.mtu !== p.mtu) ops.push({ op: 'link-set', name, mtu: p.mtu });
    // The device holds <subnet>.0/32: the source for node→pod traffic, without broadcast routes.
    const want = `${formatIPv4(p.subnet.ip)}/32`;
    const addrs = link
      ? ((await listAddrs(name))[0]?.addr_info ?? []).filter((a) => a.family === 'inet')
      : [];
    for (const a of addrs)
      if (`${a.local}/${a.prefixlen}` !== want)
        ops.push({ op: 'addr-del', dev: name, cidr: `${a.local}/${a.prefixlen}` });
    if (!addrs.some((a) => `${a.local}/${a.prefixlen}` === want))
      ops.push({ op: 'addr-add', dev: name, cidr: want });
    if (!link || !link.flags.includes('UP')) ops.push({ op: 'link-set', name, up: true });
    const failures = await this.kernel.execute(ops);
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
    if (doomed.length > 0) this.dirty = true;
    await this.kernel.execute(doomed.map((l): Op => ({ op: 'link-del', name: l.ifname })));
  }

  /**
   * Brings routes (proto WEFT_ROUTE_PROTO) and the VXLAN device's neighbours and FDB to the plan.
   * Passes run one at a time, in the order asked.
   */
  apply(plan: Plan, vxlanDev: string | undefined, o: ApplyOptions = {}): Promise<ApplyReport> {
    const pass = this.queue.then(() => this.pass(plan, vxlanDev, o));
    this.queue = pass.catch(() => undefined);
    return pass;
  }

  /** Stops following kernel events (the agent's shutdown; the monitors also die with the process). */
  close(): void {
    clearTimeout(this.repairTimer);
    clearTimeout(this.restartTimer);
    this.watch?.stop();
    this.watch = undefined;
  }

  private needsRead(vxlanDev: string | undefined): boolean {
    return (
      this.model === undefined ||
      this.dirty ||
      this.watch === undefined ||
      this.model.observed.vxlanDev !== vxlanDev ||
      Date.now() - this.model.readAt >= this.safetyResyncMs
    );
  }

  private async read(vxlanDev: string | undefined): Promise<Observed> {
    const [routes, neighs, fdb] = await Promise.all([
      query(Q.routes(['proto', String(WEFT_ROUTE_PROTO)])),
      vxlanDev ? query(Q.neighs(vxlanDev)) : [],
      vxlanDev ? query(Q.fdb(vxlanDev)) : [],
    ]);
    return { routes: ownRoutesListing(routes), vxlanDev, neighs, fdb };
  }

  private async pass(plan: Plan, vxlanDev: string | undefined, o: ApplyOptions): Promise<ApplyReport> {
    this.startWatch();
    this.last = { plan, vxlanDev };
    this.stats.passes++;
    this.applying = true;
    try {
      let observed: Observed;
      let readAt: number;
      if (o.resync || this.needsRead(vxlanDev)) {
        this.dirty = false; // an event from now on may postdate the listing: it sets it again
        readAt = Date.now();
        observed = await this.read(vxlanDev);
        this.stats.reads++;
      } else {
        observed = this.model!.observed;
        readAt = this.model!.readAt;
      }
      const d = diff(plan, observed === this.model?.observed ? this.model.owned : observed, vxlanDev);
      const ops = d.ops.map((p) => p.op);
      const failures = ops.length > 0 ? await this.kernel.execute(ops) : [];
      if (ops.length > 0 || this.model?.observed !== observed) {
        const next = afterApply(observed, vxlanDev, ops, failures);
        this.model = { observed: next, owned: owned(next), readAt };
      }
      if (failures.length > 0) this.dirty = true; // a failed Op may have half-happened
      return this.report(d.ops, d.unchanged, failures);
    } catch (e) {
      this.dirty = true;
      throw e;
    } finally {
      this.applying = false;
      const held = this.heldEvents;
      this.heldEvents = [];
      for (const e of held) this.onEvent(e);
    }
  }

  private report(planned: PlannedOp[], unchanged: number, failures: OpFailure[]): ApplyReport {
    const removals = new Set(['route-del', 'neigh-del', 'fdb-del']);
    const report: ApplyReport = {
      added: planned.filter((p) => !removals.has(p.op.op)).length,
      removed: planned.filter((p) => removals.has(p.op.op)).length,
      unchanged,
      failures: failures.map((f) => ({
        subject: planned[f.index]?.subject ?? f.command,
        command: f.command,
        message: f.message,
      })),
    };
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

  // ------------------------------------------------------------------------------- kernel events

  private startWatch(): void {
    if (!this.events || this.watch) return;
    this.watch = watchKernel((e) => this.onEvent(e));
    this.dirty = true; // whatever happened before the monitors listened is read, not assumed
  }

  private onEvent(e: KernelEvent): void {
    if (this.applying) {
      this.heldEvents.push(e); // judged against the model this pass leaves
      return;
    }
    if (e.kind === 'lost') {
      this.log.warn({ reason: e.why }, 'kernel events may have been missed: re-reading the kernel');
      if (/exited/.test(e.why) && this.watch) {
        this.watch.stop();
        this.watch = undefined; // every pass reads the kernel until the monitors are back
        clearTimeout(this.restartTimer);
        this.restartTimer = setTimeout(() => {
          this.startWatch();
          this.scheduleRepair();
        }, WATCH_RESTART_MS).unref();
      }
    } else if (this.model === undefined || this.dirty || agrees(this.model.owned, e)) return;
    else this.log.info({ event: e }, 'the kernel changed under weft: repairing the data path');
    this.dirty = true;
    this.scheduleRepair();
  }

  /** Re-applies the last plan soon (a burst of changes is repaired in one pass). */
  private scheduleRepair(): void {
    if (!this.last || this.repairTimer) return;
    this.repairTimer = setTimeout(() => {
      this.repairTimer = undefined;
      const { plan, vxlanDev } = this.last!;
      this.stats.repairs++;
      this.apply(plan, vxlanDev).catch((err: unknown) =>
        this.log.warn(`cannot repair the data path: ${err instanceof Error ? err.message : String(err)}`),
      );
    }, REPAIR_DELAY_MS).unref();
  }
}

/** Parses "a.b.c.d" or throws a WeftError naming the flag. */
export function requireIPv4(text: string, what: string): IPv4 {
  const ip = parseIPv4(text);
  if (ip === undefined) throw new WeftError(`${what}: "${text}" is not an IPv4 address`);
  return ip;
}
