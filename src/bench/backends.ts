import { BACKEND_TYPES, type BackendType } from '../config/network-config.js';
import type { LabState, SwitchOptions } from '../lab/lab.js';

/**
 * What `weft bench --backends` can switch a lab to: every backend, and variants of one. A variant is
 * a backend type with the options of the switch that makes it (labSwitchBackend's SwitchOptions):
 *  - `udp-batch1`: udp with Batch 1 in its Backend object (Flannel's proxy: one packet per system
 *    call, no offloads), measured against udp and the kernel's vxlan in one run;
 *  - `host-gw+pairs`: host-gw with the talk's 2016 fix (the lab gives every node port the address pair
 *    of its pod subnet, no router routes: src/lab/address-pairs.ts), measured beside plain host-gw,
 *    which Neutron's port security drops.
 */
export interface BenchBackend {
  /** In --backends and in path ids (cross-node/<id>). */
  id: string;
  type: BackendType;
  /** What labSwitchBackend is asked for besides the type (none: the plain backend). */
  switch?: SwitchOptions;
  /** In tables and in the result's `backend` field. */
  label: string;
  /** Only on a lab of this underlay. */
  underlay?: string;
}

const VARIANTS: BenchBackend[] = [
  { id: 'udp-batch1', type: 'udp', switch: { backend: { Batch: 1 } }, label: 'udp, batch=1' },
  {
    id: 'host-gw+pairs',
    type: 'host-gw',
    switch: { addressPairs: true },
    label: 'host-gw + address pairs',
    underlay: 'neutron',
  },
];

export const BENCH_BACKEND_IDS: readonly string[] = [...BACKEND_TYPES, ...VARIANTS.map((v) => v.id)];

export function benchBackend(id: string): BenchBackend | undefined {
  if ((BACKEND_TYPES as readonly string[]).includes(id)) return { id, type: id as BackendType, label: id };
  return VARIANTS.find((v) => v.id === id);
}

/** What a lab's state records of the switch that made it, in SwitchOptions' shape (for comparison). */
const recorded = (o: SwitchOptions | undefined): string =>
  JSON.stringify([o?.backend ?? null, o?.addressPairs === true]);

/** The id of what the lab runs now: the variant whose switch left the lab as it is, else the type. */
export function runningBackend(s: Pick<LabState, 'backend' | 'backendOptions' | 'addressPairs'>): string {
  const now = recorded({
    ...(s.backendOptions && { backend: s.backendOptions }),
    ...(s.addressPairs && { addressPairs: true }),
  });
  return VARIANTS.find((v) => v.type === s.backend && recorded(v.switch) === now)?.id ?? s.backend;
}
