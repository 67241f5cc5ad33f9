import { join } from 'node:path';
import { labDown, labStatus, labUp, readState, labSwitchBackend, type LabState } from '../lab/lab.js';
import { validateSpec } from '../lab/spec.js';
import { execIn } from '../kernel/netns.js';
import { agentGet } from './status-command.js';

/**
 * `weft demo`: the quick start. Builds a 3-node lab, shows every pod reaching every other pod over
 * vxlan and then host-gw, shows a node's view, and removes the lab again (also on failure).
 */
export async function runDemo(opts: { name: string; keep: boolean }): Promise<number> {
  const out = (s = '') => process.stdout.write(s + '\n');
  const spec = validateSpec({
    name: opts.name,
    nodes: 3,
    podsPerNode: 2,
    underlay: 'flat',
    backend: 'vxlan',
  });
  out(
    `== weft demo: ${spec.nodes} nodes x ${spec.podsPerNode} pods, ${spec.underlay} underlay, ${spec.backend}`,
  );
  let failures = 0;
  try {
    const t0 = performance.now();
    await labUp(spec, (m) => out(`   ${m}`));
    out(`   lab up in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
    const s = await labStatus(spec.name);
    for (const n of s.nodes) out(`   node ${n.name}  ${n.publicIP.padEnd(12)} subnet ${n.subnet}`);
    for (const p of s.pods) out(`   pod  ${p.name.padEnd(5)} on ${p.node}  ${p.ip}`);
    failures += await pingMatrix(await readState(spec.name), 'vxlan');
    const n1 = (await readState(spec.name)).nodes[0]!;
    const st = JSON.parse((await agentGet(join(n1.dir, 'agent.sock'), '/status')).body) as {
      peers: { subnet: string; publicIP: string; path: string }[];
      podMtu: number;
    };
    out(
      `\n   node n1 sees ${st.peers.length} peers (pod MTU ${st.podMtu}): ${st.peers.map((p) => `${p.subnet} via ${p.path} to ${p.publicIP}`).join(', ')}`,
    );
    out('\n== switching the lab to host-gw');
    await labSwitchBackend(spec.name, 'host-gw', (m) => out(`   ${m}`));
    failures += await pingMatrix(await readState(spec.name), 'host-gw');
  } finally {
    if (!opts.keep) {
      await labDown(spec.name, (m) => out(`\n   ${m}`));
    } else out(`\n   lab kept: weft lab status --name ${spec.name}; weft lab down --name ${spec.name}`);
  }
  out(
    failures === 0
      ? '\n== demo passed: every pod reached every other pod, with both backends'
      : `\n== demo FAILED: ${failures} unreachable pairs`,
  );
  return failures === 0 ? 0 : 1;
}

async function pingMatrix(s: LabState, label: string): Promise<number> {
  const out = (t: string) => process.stdout.write(t + '\n');
  out(`\n   ping matrix (${label}), row = from, column = to:`);
  out('          ' + s.pods.map((p) => p.name.padEnd(6)).join(''));
  let bad = 0;
  for (const a of s.pods) {
    const cells = await Promise.all(
      s.pods.map(async (b) => {
        if (a === b) return '  -   ';
        const r = await execIn(a.netns, ['ping', '-c', '1', '-W', '1', '-q', b.ip], { allowFailure: true });
        if (r.code !== 0) bad++;
        return r.code === 0 ? (a.node === b.node ? ' ok=  ' : ' ok   ') : ' FAIL ';
      }),
    );
    out(`   ${a.name.padEnd(7)}${cells.join('')}`);
  }
  out('   (ok= same node, ok across nodes)');
  return bad;
}
