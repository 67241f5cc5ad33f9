import { BACKEND_TYPES, type BackendType } from '../config/network-config.js';
import { runningVariant, type LabState, type SwitchOptions } from '../lab/lab.js';

/**
 * What `weft bench --backends` can switch a lab to: every backend, and variants that differ by what
 * the lab does around the agents — `host-gw+pairs` is host-gw with the talk's 2016 fix (the lab gives
 * every node port the address pair of its pod subnet, no router routes: src/lab/address-pairs.ts),
 * measured beside plain host-gw, which Neutron's port security drops.
 */
export interface BenchBackend {
  /** In --backends and in path ids (cross-node/<id>). */
  id: string;
  type: BackendType;
  /** What the lab adds when it switches to it. */
  lab?: SwitchOptions;
  /** In tables and in the result's `backend` field. */
  label: string;
  /** Only on a lab of this underlay. */
  underlay?: string;
}

const VARIANTS: BenchBackend[] = [
  {
    id: 'host-gw+pairs',
    type: 'host-gw',
    lab: { addressPairs: true },
    label: 'host-gw + address pairs',
    underlay: 'neutron',
  },
];

export const BENCH_BACKEND_IDS: readonly string[] = [...BACKEND_TYPES, ...VARIANTS.map((v) => v.id)];

export function benchBackend(id: string): BenchBackend | undefined {
  if ((BACKEND_TYPES as readonly string[]).includes(id)) return { id, type: id as BackendType, label: id };
  return VARIANTS.find((v) => v.id === id);
}

/** The id of what the lab runs now. */
export const runningBackend = (s: LabState): string => runningVariant(s);
