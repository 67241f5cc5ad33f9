/**
 * CNI error codes (SPEC.md "Well-known Error Codes") and the error type every verb throws. main.ts turns
 * a CniError into the spec's error object on stdout; anything else becomes code 100 (internal).
 */
export const ERR = {
  /** 1: the configuration's cniVersion is not one this plugin supports (or the verb needs a newer one). */
  INCOMPATIBLE_VERSION: 1,
  /** 2: a field of the network configuration is not supported; the message names key and value. */
  UNSUPPORTED_FIELD: 2,
  /** 3: container unknown or does not exist. */
  UNKNOWN_CONTAINER: 3,
  /** 4: invalid or missing CNI_* environment variables; the message names them. */
  INVALID_ENV: 4,
  /** 5: I/O failure (stdin, the allocation store). */
  IO: 5,
  /** 6: stdin could not be decoded. */
  DECODE: 6,
  /** 7: the network configuration is invalid. */
  INVALID_CONFIG: 7,
  /** 11: transient: try again later (no lease yet, lock busy). */
  TRY_AGAIN: 11,
  /** 50: STATUS: the plugin cannot serve ADD. */
  NOT_AVAILABLE: 50,
  /** 51: STATUS: not available and existing pods may have limited connectivity. */
  NOT_AVAILABLE_LIMITED: 51,
  // Plugin-specific codes (100+).
  /** 100: unexpected internal failure. */
  INTERNAL: 100,
  /** 101: a kernel operation (an `ip` or `nft` command) failed. */
  KERNEL: 101,
  /** 102: the agent's subnet file exists but cannot be parsed. */
  BAD_SUBNET_FILE: 102,
  /** 103: no address can be allocated (pool exhausted, or the requested address is taken/outside). */
  NO_ADDRESS: 103,
  /** 104: CNI_IFNAME already exists in the pod's network namespace. */
  IFACE_EXISTS: 104,
  /** 105: CHECK found the attachment different from prevResult. */
  CHECK_FAILED: 105,
  /** 106: GC could not remove everything it should have (details list what remains). */
  GC_INCOMPLETE: 106,
} as const;

export class CniError extends Error {
  readonly code: number;
  readonly details: string | undefined;
  constructor(code: number, msg: string, details?: string) {
    super(msg);
    this.name = 'CniError';
    this.code = code;
    this.details = details;
  }
}
