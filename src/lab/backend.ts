import { join } from 'node:path';
import type { BackendOptions, BackendType } from '../config/network-config.js';
import type { FastPathMode } from '../config/fast-path-mode.js';
import { readSubnetEnv } from '../config/subnet-env.js';
import { WeftError } from '../util/errors.js';
import { applyAddressPairs, releaseAddressPairs } from './address-pairs.js';
import { startAgent, waitReady } from './agents.js';
import { putNetworkConfig } from './etcd.js';
import { Journal, labDir } from './journal.js';
import { ipIn, killAll } from './netns.js';
import { waitNeutronApplied } from './neutron-evidence.js';
import { waitReachable } from './reachability.js';
import { readState, writeState, type LabState } from './state.js';
import { waitPodPairsSteady } from './steady.js';
import type { Progress } from './underlay.js';

/** What a switch asks for besides the backend type: one object for every option of a switch. */
export interface SwitchOptions {
  /**
   * Extra keys of the network config's Backend object (udp's Batch, say): the agents' side. The same
   * backend with other options is a switch too; recorded in the lab's state (backendOptions).
   */
  backend?: BackendOptions;
  /**
   * The talk's 2016 fix with host-gw on a neutron lab: the lab gives every node port the address pair
   * of its pod subnet, no router routes (address-pairs.ts). Removed again at the next switch.
   */
  addressPairs?: boolean;
  /** The network config's FastPath from now on (absent: the lab's current one). */
  fastPath?: FastPathMode;
}

/**
 * Switches a running lab's backend (and, if asked, its BPF fast path): new network config in etcd, every agent restarted (a clean
 * restart: the new backend removes what the old one owned, in the kernel and in the cloud; an agent with the fast path off removes its programs), pod
 * interfaces set to the new MTU (what a runtime would get from re-attaching them); pods are not
 * restarted. Returns when every agent is ready and every peer path it can carry is reachable (for a
 * cloud path: its data path answered), and no cloud object of the old backend is left.
 */
export async function labSwitchBackend(
  name: string,
  backend: BackendType,
  progress: Progress = () => undefined,
  opts: SwitchOptions = {},
): Promise<LabState> {
  const s = await readState(name);
  if (opts.addressPairs && backend !== 'host-gw')
    throw new WeftError(`address pairs (the 2016 fix) are for host-gw, not ${backend}`, {
      hint: `weft lab backend host-gw --address-pairs --name ${name}`,
    });
  if (opts.addressPairs && !s.neutron)
    throw new WeftError(`address pairs need a lab on the neutron underlay (lab ${name} is ${s.underlay})`, {
      hint: 'weft lab up --underlay neutron',
    });
  const t0 = performance.now();
  const fastPath = opts.fastPath ?? s.spec.fastPath ?? 'none';
  if (s.addressPairs) {
    await releaseAddressPairs(s, progress);
    await writeState(s);
  }
  s.spec = { ...s.spec, backend, fastPath };
  await putNetworkConfig(s.etcd, s.spec, backend, opts.backend);
  await killAll(s.nodes.map((n) => n.agentPid).filter(Boolean), 10_000);
  const j = new Journal(labDir(name));
  for (const n of s.nodes) n.agentPid = await startAgent(s, n, j);
  s.backend = backend;
  if (opts.backend) s.backendOptions = opts.backend;
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
  const reach = await waitReachable(s, progress);
  if (reach.leftInCloud.length)
    throw new WeftError(
      `switched to ${backend}, but cloud objects of the earlier backend are left: ${reach.leftInCloud.map((l) => `${l.node}: ${l.reason}`).join('; ')}`,
      { hint: `see the agents' logs in ${labDir(name)}/nodes/*/agent.log` },
    );
  if (opts.addressPairs) {
    await applyAddressPairs(s, progress);
    await writeState(s);
  }
  // What was removed (the old backend's pairs and routes) must be gone from the data plane too.
  if (s.neutron) {
    const after = await waitNeutronApplied(s);
    if (after > 0) progress(`Neutron's data plane follows its API (${after} s)`);
  }
  await waitPodPairsSteady(s, reach, progress);
  const fp = fastPath === 'none' ? '' : ` (BPF fast path ${fastPath})`;
  progress(
    `backend switched to ${backend}${opts.addressPairs ? ' with address pairs' : ''}${fp} in ${Math.round(performance.now() - t0) / 1000} s`,
  );
  return s;
}
