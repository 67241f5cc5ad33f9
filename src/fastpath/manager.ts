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
import type { Logger } from '../util/log.js';
import { setFastPathGate } from './gate.js';
import { FastPathMetrics, type KernelCounters } from './metrics.js';
import type { FastPathMode } from './mode.js';
import { fastPathPlan, syncScript, type FastPathNode } from './plan.js';

export interface FastPathStatus {
  mode: FastPathMode;
  active: boolean;
  /** Why the fast path is off although asked for (kernel, build), in one line. */
  reason?: string;
  peers?: number;
  netDevs?: string[];
}

/**
 * The agent's side of the BPF fast path: attaches it (or removes it, for `none`) when the node's
 * lease is configured, hands it the peer table after every reconcile pass that changed something
 * (and on the resync period, to repair drift), and reads its counters for /metrics. The fast path
 * lives in the kernel, not in this process: an agent that stops or is killed leaves it working, and
 * the next one takes it over (the loader finds it by the network namespace's cookie).
 */
export class FastPath {
  private mode: FastPathMode = 'none';
  private active = false;
  private reason: string | undefined;
  private lastScript: string | undefined;
  private lastForced = 0;
  private netDevs: string[] = [];
  private peers = 0;
  private readonly metrics: FastPathMetrics;

  constructor(
    private readonly log: Logger,
    registry: Registry,
    private readonly resyncMs: number,
  ) {
    this.metrics = new FastPathMetrics(registry);
  }

  /** Brings the fast path to `mode` for this node (at start, and whenever the lease is configured). */
  async ensure(mode: FastPathMode, node: FastPathNode): Promise<void> {
    this.mode = mode;
    this.lastScript = undefined;
    const missing = fastPathMissing();
    if (mode === 'none') {
      if (!missing) await this.remove('off (--fast-path none)');
      return;
    }
    if (missing) return this.off(missing);
    try {
      // Peers and the other devices follow with the first reconcile pass; an earlier run's stay
      // programmed until then (a restart does not interrupt the fast path).
      const a = await runFastPathScript([
        `load ${FASTPATH_OBJECT}`,
        `subnet ${node.subnet.toString()}`,
        `attach ${node.vxlanDev ?? node.underlay}`,
        'pods-sync',
      ]);
      setFastPathGate(true);
      this.active = true;
      this.reason = undefined;
      this.metrics.active.set(1);
      this.log.info(
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
    this.metrics.active.set(0);
    const line = `BPF fast path off: ${reason}; pod traffic takes the normal path`;
    if (failed || this.mode === 'bpf') this.log.warn(line);
    else this.log.info(line);
  }

  /** After a reconcile pass: the peers of the plan into the maps, the program on the right devices. */
  async sync(plan: Plan, node: FastPathNode, kernelChanged: boolean): Promise<void> {
    if (!this.active) return;
    const fp = fastPathPlan(plan, node);
    const script = syncScript(FASTPATH_OBJECT, node, fp);
    const text = script.join('\n');
    const due = Date.now() - this.lastForced >= this.resyncMs;
    if (!kernelChanged && !due && text === this.lastScript) return;
    let a: LoaderAnswer;
    try {
      a = await runFastPathScript(script);
    } catch (e) {
      this.lastScript = undefined;
      this.log.error(`cannot program the BPF fast path: ${describeError(e)}`);
      return;
    }
    this.lastScript = text;
    if (due) this.lastForced = Date.now();
    this.peers = fp.peers.length;
    this.netDevs = fp.netDevs;
    for (const why of (a.peerErrors as string[] | undefined) ?? [])
      this.log.warn(`fast path: ${why}; that peer's pods are reached the normal way`);
    const changed = a.peers as Record<string, number> | undefined;
    if (changed && (changed.added || changed.changed || changed.removed || a.load !== 'reused'))
      this.log.info({ load: a.load, peers: changed, pods: a.pods }, 'BPF fast path updated');
  }

  /** Reads the program's counters into /metrics. */
  async refreshMetrics(): Promise<void> {
    if (!this.active) return;
    const a = await runFastPath(['stats']).catch(() => undefined);
    if (a?.counters) this.metrics.update(a.counters as KernelCounters);
  }

  /**
   * A clean stop: the programs stay attached (pod traffic keeps its fast path), but the CNI plugin
   * stops adding pods until an agent runs again (its resync adds the pods attached meanwhile), so that
   * a node namespace removed after its agent leaves no marker behind.
   */
  closeGate(): void {
    if (this.active) setFastPathGate(false);
  }

  /** Takes every weft program off this node's devices (their maps go with them). */
  async remove(why = 'removed'): Promise<void> {
    if (fastPathMissing() !== undefined) return;
    this.active = false;
    this.metrics.active.set(0);
    setFastPathGate(false);
    try {
      const a = await runFastPath(['unload']);
      const u = a.unloaded as { objects: number; detached: number } | undefined;
      if (u && (u.objects > 0 || u.detached > 0))
        this.log.info(
          { objects: u.objects, detached: u.detached },
          `BPF fast path ${why}: programs detached`,
        );
    } catch (e) {
      this.log.error(`cannot remove the BPF fast path: ${describeError(e)}`);
    }
  }

  status(): FastPathStatus {
    return {
      mode: this.mode,
      active: this.active,
      ...(this.reason !== undefined && { reason: this.reason }),
      ...(this.active && { peers: this.peers, netDevs: this.netDevs }),
    };
  }
}
