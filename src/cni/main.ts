#!/usr/bin/env node
/**
 * weft-cni: the CNI plugin executable. A runtime runs it once per verb with CNI_* in the environment
 * and the network configuration on stdin; it prints a result (or nothing) and exits 0, or prints a spec
 * error object and exits 1. Every failure, expected or not, ends as such an object: never a stack trace.
 *
 * Start-up is on the hot path of every pod: only Node built-ins and small local modules are loaded.
 */
import { readSync, writeSync } from 'node:fs';
import { localLinkNames } from '../kernel/iproute.js';
import { deleteLink } from '../kernel/kernel.js';
import { CniError, ERR } from './errors.js';
import { trace } from './ip.js';
import { attachmentHash, hostVethName } from './names.js';
import { asCniError, errorOutcome, runCni } from './run.js';

/**
 * DEL's slowest part is the kernel deleting the veth pair. It needs only the attachment's host veth
 * name, so it is started before the rest of the plugin is loaded (with iproute2 the `ip` process
 * overlaps the loading); cmdDel checks the outcome and retries if needed.
 */
function startVethDelete(containerId: string, ifname: string): Promise<void> {
  const veth = hostVethName(attachmentHash({ containerId, ifname }));
  if (!localLinkNames().has(veth)) return Promise.resolve();
  return deleteLink(veth).then(
    () => undefined,
    () => undefined,
  );
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

async function main(): Promise<number> {
  trace('loaded');
  const r = await runCni(process.env, readStdin, startVethDelete);
  if (r.stdout) writeSync(1, r.stdout);
  return r.code;
}

process.on('uncaughtException', (e) => {
  try {
    writeSync(1, errorOutcome(asCniError(e)).stdout);
  } finally {
    process.exit(1);
  }
});

void main().then((code) => {
  trace('done');
  process.exit(code);
});
