import { BACKEND_TYPES, type BackendType } from '../config/network-config.js';
import type { LabState } from '../lab/lab.js';

/**
 * What `weft bench --backends` can switch a lab to: every backend, and variants of one that differ by
 * keys of the network config's Backend object — `udp-batch1` is udp with Batch 1 (Flannel's proxy:
 * one packet per system call, no offloads), measured against udp and the kernel's vxlan in one run.
 */
export interface BenchBackend {
  /** In --backends and in path ids (cross-node/<id>). */
  id: string;
  type: BackendType;
  /** Extra keys of the Backend object. */
  options?: Record<string, unknown>;
  /** In tables and in the result's `backend` field. */
  label: string;
}

const VARIANTS: BenchBackend[] = [
  { id: 'udp-batch1', type: 'udp', options: { Batch: 1 }, label: 'udp, batch=1' },
];

export const BENCH_BACKEND_IDS: readonly string[] = [...BACKEND_TYPES, ...VARIANTS.map((v) => v.id)];

export function benchBackend(id: string): BenchBackend | undefined {
  if ((BACKEND_TYPES as readonly string[]).includes(id)) return { id, type: id as BackendType, label: id };
  return VARIANTS.find((v) => v.id === id);
}

/** The id of what the lab runs now. */
export function runningBackend(s: LabState): string {
  const opts = JSON.stringify(s.backendOptions ?? null);
  const v = VARIANTS.find((x) => x.type === s.backend && JSON.stringify(x.options) === opts);
  return v?.id ?? s.backend;
}
