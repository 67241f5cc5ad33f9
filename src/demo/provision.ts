import { join } from 'node:path';
import { readSubnetEnv } from '../config/subnet-env.js';
import { labUp, type LabState } from '../lab/lab.js';
import { convertMagnumTemplate, formatMagnumMapping, isMagnumTemplate } from '../lab/magnum.js';
import { neutronNodePlan } from '../lab/neutron-underlay.js';
import { loadSpecFile, validateSpec } from '../lab/spec.js';
import { WeftError } from '../util/errors.js';
import type { DemoContext } from './context.js';
import { podPairs } from './probe.js';
import type { ProvisionResult } from './result.js';

/**
 * Step 1: a cluster on a Neutron tenant network across the fixture's hypervisors, provisioned from a
 * Magnum cluster template as Magnum did, every label's mapping said; then one ping per pod pair right
 * after `lab up` returned (ready means reachable).
 */
export async function provision(
  ctx: DemoContext,
  template: string,
): Promise<{ state: LabState; result: ProvisionResult }> {
  const doc = await loadSpecFile(template);
  if (!isMagnumTemplate(doc))
    throw new WeftError(`${template} is not a Magnum cluster template`, {
      hint: 'give a template with network_driver, labels (flannel_backend, …) and node_count, e.g. examples/magnum-flannel.yaml',
    });
  const conv = convertMagnumTemplate(doc);
  for (const line of formatMagnumMapping(conv).split('\n')) ctx.say(`   ${line}`);
  const mapping = [...conv.mapping];
  if (ctx.underlay !== conv.spec.underlay) {
    mapping.push({
      field: '(weft demo --underlay)',
      value: ctx.underlay,
      became: `underlay: ${ctx.underlay} (a quick run without Neutron)`,
    });
    ctx.say(
      `   and --underlay ${ctx.underlay}: the lab runs on a ${ctx.underlay} underlay instead (no Neutron)`,
    );
  }
  // The bench needs two pods on one node; the name is the demo's (one lab per demo).
  const spec = validateSpec(
    { ...conv.spec, name: ctx.lab, underlay: ctx.underlay, podsPerNode: 2 },
    template,
  );
  if (spec.underlay === 'neutron')
    ctx.progress(
      'starting real Neutron: MariaDB, RabbitMQ, neutron-server, a linuxbridge agent per hypervisor, the L3 agent (about a minute)',
    );
  const state = await labUp(spec, ctx.progress);
  const pairs = await podPairs(state);
  const nodes = await Promise.all(
    state.nodes.map(async (n, i) => ({
      name: n.name,
      publicIP: n.publicIP,
      underlaySubnet: n.underlaySubnet,
      ...(state.neutron && { hypervisor: neutronNodePlan(state.name, i).hypervisor }),
      podSubnet: (await readSubnetEnv(join(n.dir, 'subnet.env'))).subnet.toString(),
    })),
  );
  for (const n of nodes)
    ctx.say(
      `   node ${n.name}  ${n.publicIP.padEnd(10)} on ${n.underlaySubnet}${n.hypervisor ? ` (${n.hypervisor})` : ''}  pods ${n.podSubnet}`,
    );
  ctx.say(
    `   right after lab up: ${pairs.answered}/${pairs.total} pod pairs answer one ping${pairs.failed.length ? ` (not: ${pairs.failed.join(' ')})` : ''}`,
  );
  return {
    state,
    result: {
      template,
      ...(conv.templateName && { templateName: conv.templateName }),
      mapping,
      underlay: spec.underlay,
      backend: spec.backend,
      network: spec.network,
      nodes,
      pods: state.pods.map((p) => ({ name: p.name, node: p.node, ip: p.ip })),
      timings: state.timings,
      podPairs: { total: pairs.total, answered: pairs.answered },
    },
  };
}
