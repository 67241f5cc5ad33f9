import { join } from 'node:path';
import { readSubnetEnv } from '../config/subnet-env.js';
import { CloudRoutesCoordinator } from '../cloud/coordinator.js';
import { FileOwnershipStore } from '../cloud/ownership-file.js';
import type { AssignmentSource, NodeAssignment } from '../cloud/sources.js';
import { NeutronClient } from '../openstack/neutron.js';
import { WeftError } from '../util/errors.js';
import { labDir } from './journal.js';
import { NEUTRON_URL } from './neutron-underlay.js';
import type { LabState } from './state.js';
import type { Progress } from './underlay.js';

/**
 * The talk's 2016 fix for host-gw on Neutron, as the lab's provisioner applies it: Magnum's Heat
 * templates gave every node port an allowed-address pair for the pod network, so that port security
 * lets pod-sourced packets through, and asked nothing of the router. Here the lab does the same
 * through `weft cloud-routes --pairs-only` (the coordinator, in-process: src/cloud/coordinator.ts
 * with routes off), one pair per node port for that node's own pod subnet — tighter than Magnum's
 * one pair for the whole pod network, the same effect on the data path. The agents run plain host-gw
 * and know nothing of it; pods of nodes on other subnets stay unreachable (no router routes).
 *
 * The pairs are recorded as owned by the cluster `magnum-<lab>` in `<lab dir>/magnum-pairs/`, apart
 * from the agents' own records in etcd, and removed at the lab's next backend switch.
 */
export const addressPairsCluster = (lab: string): string => `magnum-${lab}`;

/** The nodes' pod subnets, from their subnet.env, as a one-shot source. */
function labSource(s: LabState): AssignmentSource {
  return {
    description: `lab ${s.name} (subnet.env of every node)`,
    read: async () => {
      const nodes: NodeAssignment[] = [];
      for (const n of s.nodes) {
        const env = await readSubnetEnv(join(n.dir, 'subnet.env'));
        nodes.push({ node: n.publicIP, nodeIP: n.publicIP, podCIDR: env.subnet.toString() });
      }
      return { nodes, problems: [], held: [], heldSubnets: [] };
    },
    watch: () => Promise.resolve(async () => undefined),
    close: () => Promise.resolve(),
  };
}

async function withCoordinator<T>(
  s: LabState,
  opts: { routes: boolean; source?: AssignmentSource },
  fn: (c: CloudRoutesCoordinator) => Promise<T>,
): Promise<T> {
  if (!s.neutron)
    throw new WeftError(`address pairs need a lab on the neutron underlay (lab ${s.name} is ${s.underlay})`, {
      hint: 'weft lab up --underlay neutron',
    });
  const store = new FileOwnershipStore(join(labDir(s.name), 'magnum-pairs'));
  const c = new CloudRoutesCoordinator({
    source: opts.source ?? labSource(s),
    client: new NeutronClient({ endpoint: NEUTRON_URL }),
    store,
    cluster: addressPairsCluster(s.name),
    routes: opts.routes,
  });
  try {
    return await fn(c);
  } finally {
    await c.stop();
    store.close();
  }
}

/** Gives every node port the pair of its pod subnet (Neutron's API; its agents follow within a second or so). */
export async function applyAddressPairs(s: LabState, progress: Progress = () => undefined): Promise<void> {
  const t0 = performance.now();
  await withCoordinator(s, { routes: false }, async (c) => {
    const r = await c.pass();
    if (!r.ok) throw new WeftError(`cannot read the lab's pod subnets: ${r.sourceError ?? ''}`);
    const bad = r.nodes.filter((n) => n.state !== 'programmed');
    if (bad.length)
      throw new WeftError(
        `Neutron did not take the address pairs: ${bad.map((n) => `${n.node} ${n.state}: ${n.reason ?? ''}`).join('; ')}`,
      );
  });
  s.addressPairs = true;
  // Neutron's agents apply a pair 0.3–1.2 s after the API call: the caller's steady wait
  // (waitPodPairsSteady) holds the switch until pods of one subnet answer each other through them.
  progress(
    `address pairs on ${s.nodes.length} node ports (the 2016 fix, no router routes) in ${Math.round(performance.now() - t0) / 1000} s`,
  );
}

/** Removes the pairs applyAddressPairs made (and only those). */
export async function releaseAddressPairs(s: LabState, progress: Progress = () => undefined): Promise<void> {
  const r = await withCoordinator(s, { routes: false }, (c) => c.releaseAll());
  if (r.pending.length)
    throw new WeftError(`cannot remove the lab's address pairs for ${r.pending.join(' ')}`, {
      hint: 'is the Neutron API up? weft lab down removes everything anyway',
    });
  delete s.addressPairs;
  progress(`address pairs of the 2016 fix removed from ${r.released.length} node ports`);
}
