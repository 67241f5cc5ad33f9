import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { agentArgs, labAddNode, labRestartAgent, readState, type NodeState } from '../../src/lab/lab.js';
import { inNs, upLab } from '../helpers/lab.js';
import { flanneldStart, nodePicture, programFlannelPeers, startWeft } from './flannel-node.js';

const WEFT = fileURLToPath(new URL('../../src/cli/weft.js', import.meta.url));

/** Runs `weft agent FLAGS` in the foreground in a node; a refusal is an exit 1 with its line on stderr. */
async function agentRefuses(
  args: string[],
  node: NodeState,
): Promise<{ code: number | null; lines: string[] }> {
  await mkdir(node.dir, { recursive: true });
  const r = await inNs(node.netns, [process.execPath, WEFT, 'agent', ...args], { timeoutMs: 30_000 });
  return { code: r.code, lines: r.stderr.split('\n').filter(Boolean) };
}

/**
 * Issue 14's refusals: each is one line that names what is in the way and how to resolve it, and
 * leaves the node as it was.
 */
test('the agent refuses, in one line, what it must not take over', { timeout: 180_000 }, async (t) => {
  const lab = await upLab({ nodes: 1, podsPerNode: 0, backend: 'vxlan' });
  t.after(lab.down);
  await labAddNode(lab.state.name, { agent: false });
  await labAddNode(lab.state.name, { agent: false });
  const s = await readState(lab.state.name);
  const [, n2, n3] = s.nodes as [NodeState, NodeState, NodeState];

  await t.test("another program's VXLAN device on weft's VNI and port", async () => {
    const mk = await inNs(n2.netns, [
      'ip',
      'link',
      'add',
      'vx-other',
      'type',
      'vxlan',
      'id',
      '1',
      'dstport',
      '8472',
      'dev',
      'eth0',
      'nolearning',
    ]);
    assert.equal(mk.code, 0, mk.stderr);
    const r = await agentRefuses(agentArgs(s, n2), n2);
    assert.equal(r.code, 1);
    assert.equal(r.lines.length, 1, r.lines.join('\n'));
    console.log(`# ${r.lines[0]}`);
    assert.match(
      r.lines[0]!,
      /VXLAN device vx-other \(VNI 1, UDP 8472\) belongs to another program and blocks weft\.1/,
    );
    assert.match(r.lines[0]!, /"ip link del vx-other"/, 'says how to resolve it');
    assert.equal(
      (await inNs(n2.netns, ['ip', 'link', 'show', 'vx-other'])).code,
      0,
      'the device is untouched',
    );
  });

  await flanneldStart(s, n3, 'vxlan');
  await programFlannelPeers(s, n3, 'vxlan');
  const picture = await nodePicture(n3);

  await t.test('a Flannel node, without --take-over-flannel', async () => {
    const r = await agentRefuses(agentArgs(s, n3), n3);
    assert.equal(r.code, 1);
    assert.equal(r.lines.length, 1, r.lines.join('\n'));
    console.log(`# ${r.lines[0]}`);
    assert.match(r.lines[0]!, /Flannel's data path is on this node \(flannel\.1 VNI 1 UDP 8472/);
    assert.match(r.lines[0]!, /FLANNEL-POSTRTG/);
    assert.match(r.lines[0]!, /--take-over-flannel/, 'names the flag');
    assert.equal(await nodePicture(n3), picture, 'nothing on the node changed');
  });

  await t.test('a Flannel node whose flanneld still runs', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'weft-fake-flanneld-'));
    await copyFile('/bin/sleep', join(dir, 'flanneld'));
    const fake = spawn('ip', ['netns', 'exec', n3.netns, join(dir, 'flanneld'), '60'], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 300));
      const r = await agentRefuses([...agentArgs(s, n3), '--take-over-flannel'], n3);
      assert.equal(r.code, 1);
      assert.equal(r.lines.length, 1, r.lines.join('\n'));
      console.log(`# ${r.lines[0]}`);
      assert.match(r.lines[0]!, /flanneld is still running on this node \(pid \d+\)/);
    } finally {
      fake.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
    assert.equal(await nodePicture(n3), picture, 'nothing on the node changed');
  });

  await t.test('a Flannel node that masqueraded, and weft without --ip-masq', async () => {
    const args = agentArgs(s, n3).filter((a) => a !== '--ip-masq');
    const r = await agentRefuses([...args, '--take-over-flannel'], n3);
    assert.equal(r.code, 1);
    assert.equal(r.lines.length, 1, r.lines.join('\n'));
    console.log(`# ${r.lines[0]}`);
    assert.match(r.lines[0]!, /without --ip-masq \(add --ip-masq/);
    assert.equal(await nodePicture(n3), picture, 'nothing on the node changed');
  });

  await t.test(
    "FORWARD's policy DROP (Docker): FLANNEL-FWD is kept, and weft starts again without the flag",
    async () => {
      const p = await inNs(n3.netns, ['iptables-nft', '-P', 'FORWARD', 'DROP']);
      assert.equal(p.code, 0, p.stderr);
      await startWeft(s, n3, ['--take-over-flannel']);
      const saved = (await inNs(n3.netns, ['iptables-nft-save'])).stdout;
      assert.match(saved, /-A FORWARD .*-j FLANNEL-FWD/, 'FLANNEL-FWD and its jump are kept');
      assert.doesNotMatch(saved, /FLANNEL-POSTRTG/, 'the masquerade chain is gone');
      const log = await readFile(`${n3.dir}/agent.log`, 'utf8');
      assert.match(log, /kept Flannel's iptables-nft filter FLANNEL-FWD: FORWARD's policy is DROP/);
      // A restart without --take-over-flannel: the chain kept on purpose is not a reason to refuse.
      await labRestartAgent(s.name, 'n3', { signal: 'SIGTERM', start: false });
      const st = await readState(s.name);
      const node = st.nodes.find((n) => n.name === 'n3')!;
      await startWeft(st, node);
    },
  );
});
