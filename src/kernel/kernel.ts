import {
  batch,
  batchSync,
  executeOps,
  executeOpsSync,
  type BatchFailure,
  type ExecuteOptions,
  type OpFailure,
} from './batch.js';
import { isNotFound } from './errors.js';
import { deleteLinkNow, netlink, netlinkUnavailable } from './netlink.js';
import type { Op } from './ops.js';

/**
 * The seam between weft and the kernel's write side: Ops in, failures (per Op) out. Two
 * implementations carry out the same Ops: netlink (in-process, native/netlink.c) when its addon
 * loaded, iproute2 (`ip -batch`/`bridge -batch` processes) otherwise. Reads are iproute2 JSON for both
 * (iproute.ts); kernel events come from monitor.ts.
 */
export interface OpExecutor {
  readonly name: 'netlink' | 'iproute2';
  execute(ops: readonly Op[], o?: ExecuteOptions): Promise<OpFailure[]>;
  executeSync(ops: readonly Op[], o?: ExecuteOptions): OpFailure[];
}

export const iproute2: OpExecutor = { name: 'iproute2', execute: executeOps, executeSync: executeOpsSync };

let chosen: OpExecutor | undefined;

/** netlink when available, else iproute2 (decided once per process). */
export function kernelOps(): OpExecutor {
  if (chosen) return chosen;
  const nl = netlink();
  chosen = nl
    ? {
        name: 'netlink',
        execute: (ops, o) => Promise.resolve(ops.length === 0 ? [] : nl(ops, o)),
        executeSync: (ops, o) => (ops.length === 0 ? [] : nl(ops, o)),
      }
    : iproute2;
  return chosen;
}

/** Why Ops go through iproute2 rather than netlink; undefined when netlink is used. */
export const whyNotNetlink = (): string | undefined => netlinkUnavailable();

/**
 * Deletes a device of the caller's namespace (synchronously); a device that does not exist is fine.
 * With netlink it returns as soon as the device is gone from the namespace, without waiting for the
 * kernel to free it; iproute2 waits for that. Undefined when done, else the failure.
 */
export function deleteLinkSync(name: string): BatchFailure | undefined {
  const fast = deleteLinkNow(name);
  if (fast) return fast.done ? undefined : fast.failure;
  const f = batchSync([`link del ${name}`], { force: false }).failures[0];
  return f && !isNotFound(f.message) ? f : undefined;
}

/** deleteLinkSync's asynchronous front end: with iproute2 the process runs while the caller goes on. */
export async function deleteLink(name: string): Promise<BatchFailure | undefined> {
  const fast = deleteLinkNow(name);
  if (fast) return fast.done ? undefined : fast.failure;
  const f = (await batch([`link del ${name}`], { force: false })).failures[0];
  return f && !isNotFound(f.message) ? f : undefined;
}
