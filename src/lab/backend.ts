import { join } from 'node:path';
import type { BackendType } from '../config/network-config.js';
import type { FastPathMode } from '../fastpath/mode.js';
import { readSubnetEnv } from '../config/subnet-env.js';
import { startAgent, waitReady } from './agents.js';
import { putNetworkConfig } from './etcd.js';
import { Journal, labDir } from './journal.js';
import { ipIn, killAll } from './netns.js';
import { readState, writeState, type LabState } from './state.js';
import type { Progress } from './underlay.js';

/** What else a switch changes besides the backend. */
export interface SwitchOptions {
  /**
   * Extra keys of the Backend object (udp's Batch, say); the same backend with other options is a
   * switch too. Absent: none.
   */
  backendOptions?: Record<string, unknown>;
  /** The network config's FastPath from now on (absent: the lab's current one). */
  fastPath?: FastPathMode;
}

/**
 * Switches a running lab's backend (and, if asked, its BPF fast path): new network config in etcd,
 * every agent restarted (a clean restart: the new backend removes what the old one owned, an agent
 * with the fast path off removes its programs), then pod interfaces set to the new MTU (what a
 * runtime would get from re-attaching them).
 */
export async function labSwitchBackend(
  name: string,
  backend: BackendType,
  progress: Progress = () => undefined,
  opts: SwitchOptions = {},
): Promise<LabState> {
  const s = await readState(name);
  const t0 = performance.now();
  const fastPath = opts.fastPath ?? s.spec.fastPath ?? 'none';
  s.spec = { ...s.spec, backend, fastPath };
  await putNetworkConfig(s.etcd, s.spec, backend, opts.backendOptions);
  await killAll(s.nodes.map((n) => n.agentPid).filter(Boolean), 10_000);
  const j = new Journal(labDir(name));
  for (const n of s.nodes) n.agentPid = await startAgent(s, n, j);
  s.backend = backend;
  if (opts.backendOptions) s.backendOptions = opts.backendOptions;
  else delete s.backendOptions;
  await writeState(s);
  await Promise.all(s.nodes.map((n) => waitReady(n)));
  for (const n of s.nodes) {
    const env = await readSubnetEnv(join(n.dir, 'subnet.env'));
    for (const p of s.pods.filter((x) => x.node === n.name)) {
      await ipIn(p.netns, [`link set eth0 mtu ${env.mtu}`], `cannot set the MTU of ${p.name}`);
      if (p.hostVeth)
        await ipIn(n.netns, [`link set ${p.hostVeth} mtu ${env.mtu}`], `cannot set the MTU of ${p.hostVeth}`);
    }
  }
  const fp = fastPath === 'none' ? '' : ` (BPF fast path ${fastPath})`;
  progress(`backend switched to ${backend}${fp} in ${Math.round(performance.now() - t0) / 1000} s`);
  return s;
}
