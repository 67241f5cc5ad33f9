import { mkdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { netnsTag } from '../kernel/netns-tag.js';

/**
 * A marker that the fast path is on in this network namespace, so that the CNI plugin starts the
 * loader only then (a pod ADD with the fast path off costs nothing). Named like the CNI server's
 * socket, by the inode of the network namespace; the loader itself is the authority (it finds the
 * namespace's objects by netns cookie), so a stale marker costs one loader run, never a wrong entry.
 */
const GATE_DIR = process.env.WEFT_FASTPATH_GATE_DIR ?? '/run/weft/fastpath';

function gatePath(): string {
  return join(GATE_DIR, netnsTag());
}

export function fastPathGateOpen(): boolean {
  try {
    return existsSync(gatePath());
  } catch {
    return false;
  }
}

export function setFastPathGate(on: boolean): void {
  if (on) {
    mkdirSync(GATE_DIR, { recursive: true, mode: 0o700 });
    writeFileSync(gatePath(), 'bpf\n');
  } else rmSync(gatePath(), { force: true });
}
