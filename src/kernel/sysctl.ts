import { readFileSync, writeFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';

/**
 * Per-namespace sysctls through /proc/sys (net.* follows the namespace of the reading process), so no
 * `sysctl` process is needed. Inside another namespace: netns.ts sysctlIn.
 */

/**
 * A key as sysctl(8) takes it: dotted (net.ipv4.ip_forward) or, for a device whose name holds dots
 * (weft.udp), with slashes (net/ipv4/conf/weft.udp/accept_local).
 */
const file = (key: string) => `/proc/sys/${key.includes('/') ? key : key.replace(/\./g, '/')}`;

export async function sysctlWrite(key: string, value: string): Promise<void> {
  await writeFile(file(key), value);
}

export async function sysctlRead(key: string): Promise<string> {
  return (await readFile(file(key), 'utf8')).trim();
}

/** Sets a sysctl if it differs (synchronous, for the CNI plugin); a key the kernel lacks is skipped. */
export function ensureSysctlSync(key: string, value: string): void {
  let cur: string;
  try {
    cur = readFileSync(file(key), 'utf8').trim();
  } catch {
    return;
  }
  if (cur !== value) writeFileSync(file(key), value);
}
