/**
 * One CNI invocation as a function: the CNI_* variables and the configuration in, the spec's output
 * and exit code out. The executable (main.ts) calls it once per process; the resident server
 * (server.ts) calls it for every request a shim forwards, so both give byte-for-byte the same answers.
 */
import {
  compareVersions,
  configVersion,
  decodeConfig,
  LATEST_VERSION,
  parseCniArgs,
  parseEnv,
  parseNetConf,
  SUPPORTED_VERSIONS,
} from './config.js';
import { CniError, ERR } from './errors.js';
import { trace } from './ip.js';

export interface CniOutcome {
  code: number;
  stdout: string;
}

/** A spec error object on stdout and exit 1: the one shape every weft-cni failure takes. */
export function errorOutcome(err: CniError, version: string = LATEST_VERSION): CniOutcome {
  const obj = {
    cniVersion: version,
    code: err.code,
    msg: err.message,
    ...(err.details !== undefined && { details: err.details }),
  };
  return { code: 1, stdout: JSON.stringify(obj) + '\n' };
}

/** Any thrown value as a CniError (unexpected ones become "internal error: …", code 100). */
export function asCniError(e: unknown): CniError {
  return e instanceof CniError
    ? e
    : new CniError(ERR.INTERNAL, `internal error: ${e instanceof Error ? e.message : String(e)}`);
}

function requireVersion(version: string, min: string, verb: string): void {
  if (compareVersions(version, min) < 0) {
    throw new CniError(
      ERR.INCOMPATIBLE_VERSION,
      `${verb} needs cniVersion ${min} or newer; the configuration says "${version}"`,
    );
  }
}

/**
 * Runs one verb. `beforeDel` lets the executable start DEL's slow veth deletion before the rest of the
 * plugin is loaded (a resident server has it loaded already and passes nothing).
 */
export async function runCni(
  vars: Record<string, string | undefined>,
  input: () => string,
  beforeDel?: (containerId: string, ifname: string) => Promise<void>,
): Promise<CniOutcome> {
  const out = (obj: unknown, code: number): CniOutcome => ({ code, stdout: JSON.stringify(obj) + '\n' });
  // The version errors are reported in: the configuration's, once it is known and supported.
  let version: string = LATEST_VERSION;
  try {
    const env = parseEnv(vars);
    const text = input();
    if (env.command === 'VERSION') {
      let asked: unknown;
      try {
        asked = text.trim() === '' ? undefined : (JSON.parse(text) as { cniVersion?: unknown }).cniVersion;
      } catch {
        asked = undefined;
      }
      return out(
        {
          cniVersion: typeof asked === 'string' ? asked : LATEST_VERSION,
          supportedVersions: SUPPORTED_VERSIONS,
        },
        0,
      );
    }
    const raw = decodeConfig(text);
    version = configVersion(raw);
    const conf = parseNetConf(raw, version);
    const early = env.command === 'DEL' ? beforeDel?.(env.containerId!, env.ifname!) : undefined;
    const { cmdAdd, cmdCheck, cmdDel, cmdGc, cmdStatus, formatResult } = await import('./plugin.js');
    await early;
    trace('plugin loaded');
    switch (env.command) {
      case 'ADD':
        return out(formatResult(cmdAdd(env, conf, parseCniArgs(env.args)), version), 0);
      case 'DEL':
        cmdDel(env, conf);
        break;
      case 'CHECK':
        requireVersion(version, '0.4.0', 'CHECK');
        cmdCheck(env, conf);
        break;
      case 'STATUS':
        requireVersion(version, '1.1.0', 'STATUS');
        cmdStatus(conf);
        break;
      case 'GC':
        requireVersion(version, '1.1.0', 'GC');
        cmdGc(conf);
        break;
    }
    return { code: 0, stdout: '' };
  } catch (e) {
    return errorOutcome(asCniError(e), version);
  }
}
