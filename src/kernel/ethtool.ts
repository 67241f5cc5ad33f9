import { runTool } from './exec.js';

/**
 * Offload features of a device (`ethtool -k`), e.g. {"generic-receive-offload": "on"}; empty when the
 * device or ethtool is missing. Read inside the device's namespace.
 */
export async function offloadFeatures(netns: string, device: string): Promise<Record<string, string>> {
  const r = await runTool('ethtool', ['-k', device], { netns });
  const out: Record<string, string> = {};
  for (const line of r.stdout.split('\n')) {
    const m = /^\s*([a-z0-9_-]+):\s+(on|off)(?:\s+\[fixed\])?/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}
