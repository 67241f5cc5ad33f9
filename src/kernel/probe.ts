import { query, Q } from './iproute.js';
import { kernelOps } from './kernel.js';
import type { Op } from './ops.js';

/**
 * The address the agent proves a cloud-routed peer's path from (peer-readiness.ts): its pod subnet's
 * .0. With a VXLAN device that address lives on the device; with the neutron backend there is none,
 * so it lives on the loopback, labelled so that weft knows it is its own (and removes only that).
 *
 * Every function acts on the calling process's network namespace.
 */

/** The label that marks an address on `lo` as weft's probe address (iproute2 labels are `dev:suffix`). */
export const PROBE_LABEL = 'lo:weft';

async function probeAddresses(): Promise<string[]> {
  const [lo] = await query(Q.addrs('lo')).catch(() => []);
  return (lo?.addr_info ?? [])
    .filter((a) => a.family === 'inet' && a.label === PROBE_LABEL)
    .map((a) => `${a.local}/${a.prefixlen}`);
}

/**
 * Makes `address` (a.b.c.d) weft's only probe address on `lo`, or removes every one when undefined.
 * Returns the failures, one line each (empty: done).
 */
export async function setProbeAddress(address: string | undefined): Promise<string[]> {
  const want = address && `${address}/32`;
  const have = await probeAddresses();
  const ops: Op[] = [
    ...have
      .filter((a) => a !== want)
      .map((cidr): Op => ({ op: 'addr-del', dev: 'lo', cidr, label: PROBE_LABEL })),
    ...(want && !have.includes(want)
      ? [{ op: 'addr-add', dev: 'lo', cidr: want, label: PROBE_LABEL } as const]
      : []),
  ];
  const failures = await kernelOps().execute(ops);
  return failures.map((f) => `${f.command}: ${f.message}`);
}
