import { PATH_KINDS, type PeerPlan, type Plan } from '../backend/types.js';
import { sleep } from '../util/backoff.js';
import { describeError } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import type { ApplyReport } from './dataplane.js';
import type { AgentMetrics } from './metrics.js';

/** The last pass, as /status shows it. */
export type ReconcileReport = ApplyReport & { at: string; durationMs: number };

export interface ReconcileSteps {
  /** The desired data path now; undefined while there is nothing to program (no lease yet). */
  desired(): Plan | undefined;
  /** Brings the kernel to a plan. */
  apply(plan: Plan): Promise<ApplyReport>;
  /** After every pass that ran (readiness may have changed). */
  afterPass(): void;
}

/**
 * The reconcile loop: anyone may request a pass at any time (a watch event, the resync timer, a
 * re-acquired lease); requests that arrive while a pass runs, or in a burst, are coalesced into one
 * more pass. Each pass plans from the current state, applies, and reports what it did.
 */
export class Reconciler {
  private wanted = false;
  private running: Promise<void> | undefined;
  private reportedUnreachable = new Map<string, string>();
  /** The peers of the last pass, with their path and why. */
  peers: PeerPlan[] = [];
  lastReport: ReconcileReport | undefined;
  /** A pass has completed: the data path is programmed. */
  programmed = false;

  constructor(
    private readonly steps: ReconcileSteps,
    private readonly metrics: AgentMetrics,
    private readonly log: Logger,
    private readonly signal: AbortSignal,
  ) {}

  request(): void {
    this.wanted = true;
    if (!this.running) this.running = this.loop().finally(() => (this.running = undefined));
  }

  /** Requests a pass and waits until no pass is pending. */
  async now(): Promise<void> {
    this.request();
    await this.idle();
  }

  /** Resolves when no pass runs (for a clean stop). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private async loop(): Promise<void> {
    while (this.wanted && !this.signal.aborted) {
      this.wanted = false;
      await sleep(5); // coalesce a burst of watch events into one pass
      try {
        await this.once();
      } catch (err) {
        this.metrics.reconcileErrors.inc();
        this.log.error(`reconcile failed: ${describeError(err)}`);
      }
    }
  }

  private async once(): Promise<void> {
    const t0 = performance.now();
    const plan = this.steps.desired();
    if (!plan) return;
    const report = await this.steps.apply(plan);
    const durationMs = performance.now() - t0;
    this.metrics.reconcileDuration.observe(durationMs / 1000);
    if (report.failures.length > 0) {
      this.metrics.reconcileErrors.inc(report.failures.length);
      for (const f of report.failures)
        this.log.error({ command: f.command }, `cannot program ${f.subject}: ${f.message}`);
    }
    // Peers that no path reaches are reported by name, once per distinct reason.
    const unreachable = new Map(
      plan.peers.filter((p) => p.path === 'unreachable').map((p) => [p.subnet.toString(), p.reason ?? '']),
    );
    for (const [s, why] of unreachable)
      if (this.reportedUnreachable.get(s) !== why) this.log.warn({ peer: s }, `peer unreachable: ${why}`);
    this.reportedUnreachable = unreachable;
    this.peers = plan.peers;
    for (const path of PATH_KINDS)
      this.metrics.peers.set({ path }, plan.peers.filter((p) => p.path === path).length);
    this.lastReport = {
      ...report,
      at: new Date().toISOString(),
      durationMs: Math.round(durationMs * 10) / 10,
    };
    this.programmed = true;
    this.steps.afterPass();
  }
}
