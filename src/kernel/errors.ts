import { WeftError } from '../util/errors.js';

/**
 * What the kernel answered, by name. Every caller asks these instead of matching stderr itself: the
 * texts are iproute2's and the C library's (strerror), which the netlink implementation reproduces, so
 * the predicates hold for both.
 */

/** A kernel operation that failed: the command (or netlink request) and the kernel's answer. */
export class KernelError extends WeftError {
  constructor(
    readonly command: string,
    readonly reason: string,
    hint?: string,
  ) {
    super(`${command}: ${reason}`, hint === undefined ? {} : { hint });
  }
}

/** The kernel's answer in anything that carries one: a KernelError, a batch failure, an Error, a text. */
function textOf(e: unknown): string {
  if (typeof e === 'string') return e;
  if (e instanceof KernelError) return e.reason;
  if (e && typeof e === 'object') {
    const o = e as { reason?: unknown; message?: unknown; stderr?: unknown };
    for (const v of [o.reason, o.stderr, o.message]) if (typeof v === 'string' && v !== '') return v;
  }
  return String(e);
}

const test =
  (re: RegExp) =>
  (e: unknown): boolean =>
    re.test(textOf(e));

/** EEXIST: the object is there already (a device name, an address, an exclusive route). */
export const isExists = test(/File exists/);

/** The object or the device it names does not exist (ENODEV, ENOENT, ESRCH for routes). */
export const isNotFound = test(
  /Cannot find device|No such device|does not exist|No such file or directory|No such process/,
);

/** EBUSY: the device or the object is in use. */
export const isBusy = test(/Device or resource busy/);

/** The gateway or the destination cannot be reached from here (a route needing an on-link next hop). */
export const isUnreachable = test(/Network is unreachable|No route to host|invalid gateway/i);

/** EPERM/EACCES: not root, or no CAP_NET_ADMIN. */
export const isPermission = test(/Operation not permitted|Permission denied/);

/** The kernel lacks the feature (a device type, a module that cannot be loaded here). */
export const isUnsupported = test(/not supported|Unknown device type|Unknown link type/i);
