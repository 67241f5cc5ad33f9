import { join } from 'node:path';
import type { BackendType } from '../config/network-config.js';
import { readSubnetEnv } from '../config/subnet-env.js';
import { startAgent, waitReady } from './agents.js';
import { putNetworkConfig } from './etcd.js';
import { Journal, labDir } from './journal.js';
import { ipIn, killAll } from './netns.js';
import { readState, writeState, type LabState } from './state.js';
import type { Progress } from './underlay.js';

/**
 * Switches a running lab's backend: new network config in etcd, every agent restarted (a clean
 * restart: the new backend removes what the old one owned), then pod interfaces set to the new MTU
 * (what a runtime would get from re-attaching them). `options` are extra keys of the Backend object
 * (udp's Batch, say); the same backend with other options is a switch too.
 */
export async function labSwitchBackend(
  name: string,
  backend: BackendType,
  progress: Progress = () => undefined,
  options?: Record<string, unknown>,
): Promise<LabState> {
  const s = await readState(name);
  const t0 = performance.now();
  await putNetworkConfig(s.etcd, s.spec, backend, options);
  await killAll(s.nodes.map((n) => n.agentPid).filter(Boolean), 10_000);
  const j = new Journal(labDir(name));
  for (const n of s.nodes) n.agentPid = await startAgent(s, n, j);
  s.backend = backend;
  if (options) s.backendOptions = options;
  else delete s.backendOptions;
  s.spec = { ...s.spec, backend };
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
  progress(`backend switched to ${backend} in ${Math.round(performance.now() - t0) / 1000} s`);
  return s;
}
