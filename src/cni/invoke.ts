import { existsSync } from 'node:fs';
import { execIn } from '../kernel/netns.js';
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
  const o = { env, input: JSON.stringify(inv.config), allowFailure: true };
  const res = inv.hostNetns ? await execIn(inv.hostNetns, [inv.plugin], o) : await run(inv.plugin, [], o);
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

/** A network configuration list (SPEC.md §1 "Network Configuration Lists"). */
export interface CniConflist {
  cniVersion: string;
  name: string;
  disableCheck?: boolean;
  disableGC?: boolean;
  plugins: Record<string, unknown>[];
}

export interface ConflistInvocation {
  conflist: CniConflist;
  command: Exclude<CniCommand, 'VERSION'>;
  containerId?: string;
  netns?: string;
  ifname?: string;
  args?: string;
  hostNetns?: string;
  env?: Record<string, string>;
  /** Executable per plugin type (e.g. {"weft-cni": ".../dist/src/cni/main.js"}); others are searched in pluginDirs. */
  plugins?: Record<string, string>;
  /** Directories searched for plugin executables (CNI_PATH); default /opt/cni/bin, /usr/lib/cni. */
  pluginDirs?: string[];
  /** Capability arguments (portMappings, bandwidth, ips, mac, …), passed in runtimeConfig to plugins that declare them. */
  capabilityArgs?: Record<string, unknown>;
  /** For DEL and CHECK: the cached result of the ADD, passed to every plugin as prevResult. */
  prevResult?: Record<string, unknown>;
  /** For GC: the attachments that are still valid. */
  validAttachments?: { containerID: string; ifname: string }[];
}

/**
 * The runtime side of a conflist, as libcni runs one: every plugin gets the list's name and cniVersion
 * and the runtimeConfig of the capabilities it declares; ADD runs the plugins in order, each with the
 * previous result as prevResult, and returns the last result; DEL runs them in reverse order and CHECK
 * in order, each with the ADD's result as prevResult; GC and STATUS run every plugin. Stops at the first
 * error (throwing CniPluginError), as the spec requires.
 */
export async function invokeConflist(inv: ConflistInvocation): Promise<Record<string, unknown> | undefined> {
  const { conflist } = inv;
  const dirs = inv.pluginDirs ?? ['/opt/cni/bin', '/usr/lib/cni'];
  const resolve = (type: string): string => {
    const own = inv.plugins?.[type];
    if (own) return own;
    for (const d of dirs) if (existsSync(`${d}/${type}`)) return `${d}/${type}`;
    throw new WeftError(`CNI plugin "${type}" not found in ${dirs.join(':')}`);
  };
  // The spec forbids runtimes to call CHECK or GC on lists that disable them.
  if ((inv.command === 'CHECK' && conflist.disableCheck) || (inv.command === 'GC' && conflist.disableGC))
    return undefined;
  const order = inv.command === 'DEL' ? [...conflist.plugins].reverse() : conflist.plugins;
  let prev: Record<string, unknown> | undefined = inv.command === 'ADD' ? undefined : inv.prevResult;
  let last: Record<string, unknown> | undefined;
  for (const plugin of order) {
    const type = plugin.type;
    if (typeof type !== 'string') throw new WeftError(`conflist ${conflist.name}: a plugin has no "type"`);
    const config: Record<string, unknown> = {
      ...plugin,
      name: conflist.name,
      cniVersion: conflist.cniVersion,
    };
    const caps = plugin.capabilities;
    if (caps && typeof caps === 'object' && inv.capabilityArgs) {
      const rc: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(inv.capabilityArgs)) {
        if ((caps as Record<string, unknown>)[k] === true) rc[k] = v;
      }
      if (Object.keys(rc).length > 0) config.runtimeConfig = rc;
    }
    if (prev !== undefined && (inv.command === 'ADD' || inv.command === 'DEL' || inv.command === 'CHECK')) {
      config.prevResult = prev;
    }
    if (inv.command === 'GC') config['cni.dev/valid-attachments'] = inv.validAttachments ?? [];
    const file = resolve(type);
    const res = await invokeCni({
      plugin: file,
      command: inv.command,
      config,
      path: [...new Set([file.replace(/\/[^/]*$/, ''), ...dirs])].join(':'),
      ...(inv.containerId !== undefined && { containerId: inv.containerId }),
      ...(inv.netns !== undefined && { netns: inv.netns }),
      ...(inv.ifname !== undefined && { ifname: inv.ifname }),
      ...(inv.args !== undefined && { args: inv.args }),
      ...(inv.hostNetns !== undefined && { hostNetns: inv.hostNetns }),
      ...(inv.env !== undefined && { env: inv.env }),
    });
    if (inv.command === 'ADD') prev = res;
    last = res;
  }
  return inv.command === 'ADD' ? prev : last;
}
