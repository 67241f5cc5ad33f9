#!/usr/bin/env node
/**
 * weft-cni: the CNI plugin executable. A runtime runs it once per verb with CNI_* in the environment
 * and the network configuration on stdin; it prints a result (or nothing) and exits 0, or prints a spec
 * error object and exits 1. Every failure, expected or not, ends as such an object: never a stack trace.
 *
 * Start-up is on the hot path of every pod: only Node built-ins and small local modules are loaded.
 */
import { spawn } from 'node:child_process';
import { readSync, writeSync } from 'node:fs';
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
import { localLinkNames, tool, trace } from './ip.js';
import { attachmentHash, hostVethName } from './names.js';

/**
 * DEL's slowest part is the kernel deleting the veth pair (~20 ms). It needs only the attachment's host
 * veth name, so it is started (asynchronously) before the rest of the plugin is loaded, and overlaps it.
 */
function startVethDelete(containerId: string, ifname: string): Promise<void> {
  const veth = hostVethName(attachmentHash({ containerId, ifname }));
  if (!localLinkNames().has(veth)) return Promise.resolve();
  return new Promise((resolve) => {
    const child = spawn(tool('ip'), ['link', 'del', veth], { stdio: 'ignore' });
    child.on('error', () => resolve());
    child.on('close', () => resolve()); // cmdDel checks the outcome and retries if needed
  });
}

function readStdin(): string {
  const chunks: Buffer[] = [];
  const buf = Buffer.alloc(64 * 1024);
  for (;;) {
    let n: number;
    try {
      n = readSync(0, buf, 0, buf.length, null);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2);
        continue;
      }
      if (code === 'EOF') break;
      throw new CniError(ERR.IO, `cannot read the network configuration from stdin: ${code ?? String(e)}`);
    }
    if (n === 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  return Buffer.concat(chunks).toString('utf8');
}

function print(obj: unknown): void {
  writeSync(1, JSON.stringify(obj) + '\n');
}

function requireVersion(version: string, min: string, verb: string): void {
  if (compareVersions(version, min) < 0) {
    throw new CniError(
      ERR.INCOMPATIBLE_VERSION,
      `${verb} needs cniVersion ${min} or newer; the configuration says "${version}"`,
    );
  }
}

async function main(): Promise<number> {
  trace('loaded');
  // The version errors are reported in: the configuration's, once it is known and supported.
  let version: string = LATEST_VERSION;
  try {
    const env = parseEnv(process.env);
    const input = readStdin();
    if (env.command === 'VERSION') {
      let asked: unknown;
      try {
        asked = input.trim() === '' ? undefined : (JSON.parse(input) as { cniVersion?: unknown }).cniVersion;
      } catch {
        asked = undefined;
      }
      print({
        cniVersion: typeof asked === 'string' ? asked : LATEST_VERSION,
        supportedVersions: SUPPORTED_VERSIONS,
      });
      return 0;
    }
    const raw = decodeConfig(input);
    version = configVersion(raw);
    const conf = parseNetConf(raw, version);
    const early = env.command === 'DEL' ? startVethDelete(env.containerId!, env.ifname!) : undefined;
    const { cmdAdd, cmdCheck, cmdDel, cmdGc, cmdStatus, formatResult } = await import('./plugin.js');
    await early;
    switch (env.command) {
      case 'ADD': {
        const cniArgs = parseCniArgs(env.args);
        print(formatResult(cmdAdd(env, conf, cniArgs), version));
        return 0;
      }
      case 'DEL':
        cmdDel(env, conf);
        return 0;
      case 'CHECK':
        requireVersion(version, '0.4.0', 'CHECK');
        cmdCheck(env, conf);
        return 0;
      case 'STATUS':
        requireVersion(version, '1.1.0', 'STATUS');
        cmdStatus(conf);
        return 0;
      case 'GC':
        requireVersion(version, '1.1.0', 'GC');
        cmdGc(conf);
        return 0;
    }
  } catch (e) {
    const err =
      e instanceof CniError
        ? e
        : new CniError(ERR.INTERNAL, `internal error: ${e instanceof Error ? e.message : String(e)}`);
    print({
      cniVersion: version,
      code: err.code,
      msg: err.message,
      ...(err.details !== undefined && { details: err.details }),
    });
    return 1;
  }
  return 0;
}

process.on('uncaughtException', (e) => {
  try {
    print({ cniVersion: LATEST_VERSION, code: ERR.INTERNAL, msg: `internal error: ${e.message}` });
  } finally {
    process.exit(1);
  }
});

void main().then((code) => {
  trace('done');
  process.exit(code);
});
