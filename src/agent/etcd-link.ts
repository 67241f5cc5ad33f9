import { etcdSecurityProblem, type SubnetRegistry } from '../store/registry.js';
import { retry } from '../util/backoff.js';
import { ConfigError, describeError } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import type { AgentMetrics } from './metrics.js';

/** Translates the etcd client's gRPC errors into a line an operator can act on. */
export function etcdProblem(err: unknown, endpoints: string[]): string {
  const security = etcdSecurityProblem(err, endpoints);
  if (security) return security;
  const m = describeError(err);
  if (
    /UNAVAILABLE|ECONNREFUSED|No connection|deadline|DEADLINE|circuit|Broken|ETIMEDOUT|EHOSTUNREACH/i.test(m)
  ) {
    return `etcd at ${endpoints.join(',')} is unreachable`;
  }
  return m;
}

/**
 * The agent's view of etcd: whether it answers (readiness, weft_etcd_up), and the one way every
 * etcd-dependent step is retried (backoff 0.5 s doubling to 10 s, one clear line per failure).
 */
export class EtcdLink {
  /** etcd answered the last request or health check. */
  up = false;

  constructor(
    readonly registry: SubnetRegistry,
    private readonly endpoints: string[],
    private readonly metrics: AgentMetrics,
    private readonly log: Logger,
    private readonly signal: AbortSignal,
  ) {}

  /** What readiness says while etcd does not answer. */
  unreachable(): string {
    return `etcd at ${this.endpoints.join(',')} is unreachable`;
  }

  problem(err: unknown): string {
    return etcdProblem(err, this.endpoints);
  }

  /** Retries `fn` until it succeeds; a ConfigError, or any error once the agent stops, is rethrown. */
  retry<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return retry(fn, {
      initialMs: 500,
      maxMs: 10_000,
      signal: this.signal,
      fatal: (err) => err instanceof ConfigError,
      onRetry: (err, delay) => {
        this.markDown();
        this.log.warn(
          { retryInSeconds: delay / 1000 },
          `cannot ${what}: ${this.problem(err)}; retrying in ${delay / 1000}s`,
        );
      },
    });
  }

  /** The config was read: etcd answers. */
  markUp(): void {
    this.up = true;
  }

  private markDown(): void {
    this.up = false;
    this.metrics.etcdUp.set(0);
  }

  /**
   * One health check. Returns 'recovered' when etcd answers again after an outage (the caller catches
   * up with a full re-list), 'lost' when it stopped answering, undefined when nothing changed.
   */
  async check(): Promise<'recovered' | 'lost' | undefined> {
    const healthy = await this.registry.healthy(1500);
    this.metrics.etcdUp.set(healthy ? 1 : 0);
    if (healthy && !this.up) {
      this.up = true;
      this.log.info('etcd reachable again: catching up');
      return 'recovered';
    }
    if (!healthy && this.up) {
      this.up = false;
      this.log.warn(`${this.unreachable()}: keeping the data path as it is and retrying`);
      return 'lost';
    }
    return undefined;
  }
}
