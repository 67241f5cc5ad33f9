import { statSync } from 'node:fs';

/**
 * The calling process's network namespace as a file name, `net-<inode>`: what the CNI server's
 * socket and the fast path's gate marker are named by, so that a plugin finds its node's by looking
 * at its own namespace. On its own (no tool runs) so that the CNI plugin loads nothing more for it.
 */
export function netnsTag(): string {
  return `net-${statSync('/proc/self/ns/net').ino}`;
}
