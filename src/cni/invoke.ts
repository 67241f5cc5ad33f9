import { run } from '../util/exec.js';
import { WeftError } from '../util/errors.js';

/**
 * The runtime side of the CNI protocol: executes a plugin exactly as a container runtime does
 * (CNI_* environment, network config on stdin, result or error JSON on stdout). Used by the lab to
 * attach pods and by tests; it is deliberately independent of the plugin's own code.
 */
export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'STATUS' | 'GC' | 'VERSION';

export interface CniInvocation {
  /** Path of the plugin executable. */
  plugin: string;
  command: CniCommand;
  containerId?: string;
  /** Path of the pod's network namespace (/run/netns/NAME or /proc/PID/ns/net). */
  netns?: string;
  ifname?: string;
  /** CNI_ARGS, "K=V;K=V". */
  args?: string;
  /** CNI_PATH; defaults to the plugin's directory plus /usr/lib/cni and /opt/cni/bin. */
  path?: string;
  /** The network configuration written to stdin. */
  config: Record<string, unknown>;
  /** Run the plugin inside this named network namespace (the node's), as that node's runtime would. */
  hostNetns?: string;
  /** Extra environment for the plugin. */
  env?: Record<string, string>;
}

/** A plugin answered with a CNI error object ({code, msg, details}) and a non-zero exit. */
export class CniPluginError extends WeftError {
  readonly code: number;
  readonly msg: string;
  readonly details: string | undefined;
  readonly exitCode: number | null;
  constructor(code: number, msg: string, details: string | undefined, exitCode: number | null) {
    super(`CNI error ${code}: ${msg}${details ? ` (${details})` : ''}`);
    this.code = code;
    this.msg = msg;
    this.details = details;
    this.exitCode = exitCode;
  }
}

export interface CniOutput {
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the plugin and returns its raw output, whatever the exit code. */
export async function execCni(inv: CniInvocation): Promise<CniOutput> {
  const dir = inv.plugin.replace(/\/[^/]*$/, '');
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: inv.command,
    CNI_PATH: inv.path ?? [dir, '/usr/lib/cni', '/opt/cni/bin'].join(':'),
    ...(inv.containerId !== undefined && { CNI_CONTAINERID: inv.containerId }),
    ...(inv.netns !== undefined && { CNI_NETNS: inv.netns }),
    ...(inv.ifname !== undefined && { CNI_IFNAME: inv.ifname }),
    ...(inv.args !== undefined && { CNI_ARGS: inv.args }),
    ...inv.env,
  };
  const [file, args] = inv.hostNetns
    ? ['ip', ['netns', 'exec', inv.hostNetns, inv.plugin]]
    : [inv.plugin, [] as string[]];
  const res = await run(file, args, { env, input: JSON.stringify(inv.config), allowFailure: true });
  return { exitCode: res.code, stdout: res.stdout, stderr: res.stderr };
}

/** Runs the plugin; returns the parsed result, or throws CniPluginError with the plugin's error. */
export async function invokeCni(inv: CniInvocation): Promise<Record<string, unknown>> {
  const out = await execCni(inv);
  let parsed: unknown;
  try {
    parsed = out.stdout.trim() === '' ? {} : JSON.parse(out.stdout);
  } catch {
    throw new CniPluginError(
      999,
      `plugin printed non-JSON output`,
      out.stdout.slice(0, 200) || out.stderr.slice(0, 200),
      out.exitCode,
    );
  }
  if (out.exitCode !== 0) {
    const e = (parsed ?? {}) as { code?: unknown; msg?: unknown; details?: unknown };
    throw new CniPluginError(
      typeof e.code === 'number' ? e.code : 999,
      typeof e.msg === 'string' ? e.msg : `plugin exited with ${String(out.exitCode)}: ${out.stderr.trim()}`,
      typeof e.details === 'string' ? e.details : undefined,
      out.exitCode,
    );
  }
  return parsed as Record<string, unknown>;
}
