import type { Registry } from 'prom-client';
import type { Plan } from '../backend/types.js';
import {
  FASTPATH_OBJECT,
  FastPathUnsupported,
  fastPathMissing,
  runFastPath,
  runFastPathScript,
  type LoaderAnswer,
} from '../kernel/bpf.js';
import { describeError } from '../util/errors.js';
import type { Cidr } from '../util/ipv4.js';
import type { Logger } from '../util/log.js';
import { setFastPathGate } from './gate.js';
import { registerFastPathMetrics, type KernelCounters } from './metrics.js';
import type { FastPathMode } from '../config/fast-path-mode.js';
import { fastPathPlan, syncScript, type FastPathNode } from './plan.js';

export interface FastPathStatus {
  mode: FastPathMode;
  active: boolean;
  /** Why the fast path is off although asked for (kernel, build), in one line. */
  reason?: string;
  peers?: number;
  netDevs?: string[];
}

export interface FastPathSetup {
  mode: Exclude<FastPathMode, 'none'>;
  /** The underlay interface and the backend's VXLAN device with its endpoint, if it has one. */
  underlay: string;
  vxlan: FastPathNode['vxlan'];
  /** Period of the agent's kernel resync: the maps are rewritten at least this often (drift repair). */
  resyncSeconds: number;
  registry: Registry;
  log: Logger;
}

/**
 * The BPF fast path's share of a node's data path (agent/node-datapath.ts calls it): attached when
 * the node's lease is configured (start), handed the peers of every plan the data plane applies
 * (update), its counters read for /metrics at scrape time. It lives in the kernel, not in this
 * process: an agent that stops or is killed leaves it working (detach), and the next one takes it
 * over (the loader finds it by the network namespace's cookie). `removeFastPath` takes it away.
 */
export class FastPathDataPath {
  private active = false;
  private reason: string | undefined;
  private node: FastPathNode | undefined;
  private lastScript: string | undefined;
  private lastForced = 0;
  private netDevs: string[] = [];
  private peers = 0;
  private readonly activeGauge;

  constructor(private readonly s: FastPathSetup) {
    this.activeGauge = registerFastPathMetrics(s.registry, () => this.counters());
  }

  /** For the lease (again): the object loaded or reused, on the node device, the local pods in it. */
  async start(subnet: Cidr): Promise<void> {
    const s = this.s;
    this.node = { subnet, underlay: s.underlay, ...(s.vxlan && { vxlan: s.vxlan }) };
    this.lastScript = undefined;
    const missing = fastPathMissing();
    if (missing) return this.off(missing);
    try {
      // Peers and the other devices follow with the first plan; an earlier run's stay programmed
      // until then (a restart does not interrupt the fast path).
      const a = await runFastPathScript([
        `load ${FASTPATH_OBJECT}`,
        `subnet ${subnet.toString()}`,
        `attach ${s.vxlan?.dev ?? s.underlay}`,
        'pods-sync',
      ]);
      setFastPathGate(true);
      this.active = true;
      this.reason = undefined;
      this.activeGauge.set(1);
      s.log.info(
        { load: a.load, pods: a.pods },
        'BPF fast path on: pod-to-pod packets skip the bridge, netfilter and conntrack',
      );
    } catch (e) {
      this.off(describeError(e), !(e instanceof FastPathUnsupported));
    }
  }

  private off(reason: string, failed = false): void {
    this.active = false;
    this.reason = reason;
    this.activeGauge.set(0);
    const line = `BPF fast path off: ${reason}; pod traffic takes the normal path`;
    if (failed || this.s.mode === 'bpf') this.s.log.warn(line);
    else this.s.log.info(line);
  }

  /**
   * After the data plane applied a plan: its peers into the maps, the program on the devices peers'
   * traffic arrives on. Skipped when nothing changed, except once per resync period (drift repair).
   */
  async update(plan: Plan, kernelChanged: boolean): Promise<void> {
    const node = this.node;
    if (!this.active || !node) return;
    const fp = fastPathPlan(plan, node);
    const script = syncScript(FASTPATH_OBJECT, node, fp);
    const text = script.join('\n');
    const due = Date.now() - this.lastForced >= this.s.resyncSeconds * 1000;
    if (!kernelChanged && !due && text === this.lastScript) return;
    let a: LoaderAnswer;
    try {
      a = await runFastPathScript(script);
    } catch (e) {
      this.lastScript = undefined;
      this.s.log.error(`cannot program the BPF fast path: ${describeError(e)}`);
      return;
    }
    this.lastScript = text;
    if (due) this.lastForced = Date.now();
    this.peers = fp.peers.length;
    this.netDevs = fp.netDevs;
    for (const why of (a.peerErrors as string[] | undefined) ?? [])
      this.s.log.warn(`fast path: ${why}; that peer's pods are reached the normal way`);
    const changed = a.peers as Record<string, number> | undefined;
    if (changed && (changed.added || changed.changed || changed.removed || a.load !== 'reused'))
      this.s.log.info({ load: a.load, peers: changed, pods: a.pods }, 'BPF fast path updated');
  }

  private async counters(): Promise<KernelCounters | undefined> {
    if (!this.active) return undefined;
    const a = await runFastPath(['stats']).catch(() => undefined);
    return a?.counters as KernelCounters | undefined;
  }

  status(): FastPathStatus {
    return {
      mode: this.s.mode,
      active: this.active,
      ...(this.reason !== undefined && { reason: this.reason }),
      ...(this.active && { peers: this.peers, netDevs: this.netDevs }),
    };
  }

  /**
   * The agent stops or leaves: the programs stay attached (pod traffic keeps its fast path), but the
   * CNI plugin stops adding pods until an agent runs again (whose start adds the pods attached
   * meanwhile), so that a node namespace removed after its agent leaves no marker behind.
   */
  detach(): void {
    if (this.active) setFastPathGate(false);
  }
}

/**
 * Takes every weft program off this node's devices (their maps go with them): for `--fast-path none`
 * finding what an earlier run attached, for leaving, and for handing the node back to Flannel.
 * Without a built loader there is nothing of weft's to find. Returns how many programs it detached.
 */
export async function removeFastPath(log: Logger, why: string): Promise<number> {
  if (fastPathMissing() !== undefined) return 0;
  setFastPathGate(false);
  try {
    const a = await runFastPath(['unload']);
    const u = a.unloaded as { objects: number; detached: number } | undefined;
    if (u && (u.objects > 0 || u.detached > 0))
      log.info({ objects: u.objects, detached: u.detached }, `BPF fast path ${why}: programs detached`);
    return u?.detached ?? 0;
  } catch (e) {
    log.error(`cannot remove the BPF fast path: ${describeError(e)}`);
    return 0;
  }
}
