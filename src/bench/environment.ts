import { readFile } from 'node:fs/promises';
import { cpus, release, totalmem } from 'node:os';
import { offloadFeatures } from '../kernel/ethtool.js';
import type { BenchResult, Hop } from './result.js';

/**
 * What a result must carry to be read honestly later: the machine, the kernel, the tools and the
 * offload state of every interface a measured packet crossed (overlay "overhead" is often an offload
 * or MTU problem in disguise).
 */

/** The offload features that decide per-packet cost on veth, bridge and VXLAN devices. */
const OFFLOADS = [
  'rx-checksumming',
  'tx-checksumming',
  'scatter-gather',
  'tcp-segmentation-offload',
  'generic-segmentation-offload',
  'generic-receive-offload',
  'large-receive-offload',
  'tx-udp_tnl-segmentation',
  'rx-gro-list',
];

async function offloadsOf(netns: string, device: string): Promise<Record<string, string>> {
  const all = await offloadFeatures(netns, device);
  return Object.fromEntries(OFFLOADS.filter((k) => k in all).map((k) => [k, all[k]!]));
}

async function governor(): Promise<string> {
  try {
    return (await readFile('/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor', 'utf8')).trim();
  } catch {
    return 'n/a (no cpufreq: a virtual machine or a fixed clock)';
  }
}

export async function describeEnvironment(
  hops: readonly Hop[],
  underlayMtu: number,
  tools: { iperf3: string; sockperf: string },
): Promise<BenchResult['environment']> {
  const offloads: Record<string, Record<string, string>> = {};
  for (const h of hops) {
    const key = `${h.host}/${h.device}`;
    if (!(key in offloads)) offloads[key] = await offloadsOf(h.netns, h.device);
  }
  return {
    kernel: release(),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cpus: cpus().length,
    memoryBytes: totalmem(),
    cpuGovernor: await governor(),
    node: process.version,
    ...tools,
    underlayMtu,
    offloads,
  };
}
