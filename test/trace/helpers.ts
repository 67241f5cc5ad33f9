import assert from 'node:assert/strict';
import { nftTables } from '../../src/kernel/observe.js';
import type { LabState, NodeState } from '../../src/lab/lab.js';
import { cmdline, listNetns } from '../../src/lab/netns.js';
import { TRACE_TABLE_PREFIX } from '../../src/trace/nft-trace.js';
import type { Hop, OuterHeader, TraceResult } from '../../src/trace/types.js';
import { run } from '../../src/util/exec.js';

/** Waits until a process is gone (the kernel releases a dead loader's links as it exits). */
export async function gone(pid: number, timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await cmdline(pid)) === undefined) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return (await cmdline(pid)) === undefined;
}

/** The namespaces a lab trace may touch (the lab's, and a Neutron underlay's). */
export async function traceNamespaces(state: LabState): Promise<string[]> {
  const fixture = /^(nhost\d*|nnet|fabric|extnet|qrouter-.*)$/;
  return (await listNetns()).filter(
    (n) => n.startsWith(`wl-${state.name}-`) || (state.neutron && fixture.test(n)),
  );
}

/**
 * Nothing of a trace is left in the kernel: its loader is gone, bpftool knows none of its programs
 * (so none of its tcx links or tracepoint either), and no namespace has a trace table.
 */
export async function assertNothingLeft(
  state: LabState,
  progIds: number[],
  loaderPid: number,
): Promise<void> {
  assert.ok(
    progIds.length === 2 && progIds.every((id) => id > 0),
    `the trace reported its program ids: ${progIds.join(',')}`,
  );
  assert.ok(await gone(loaderPid), `loader ${loaderPid} has exited`);
  // a dead loader's links are released by the kernel one RCU grace period at a time: give it a moment
  for (const id of progIds) {
    const deadline = Date.now() + 15_000;
    let r = await run('bpftool', ['prog', 'show', 'id', String(id)], { allowFailure: true });
    while (r.code === 0 && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 100));
      r = await run('bpftool', ['prog', 'show', 'id', String(id)], { allowFailure: true });
    }
    assert.notEqual(r.code, 0, `BPF program ${id} is gone (bpftool prog show id ${id}: ${r.stdout.trim()})`);
  }
  const links = await run('bpftool', ['-j', 'link', 'show'], { allowFailure: true });
  const ours = (JSON.parse(links.stdout || '[]') as { prog_id: number }[]).filter((l) =>
    progIds.includes(l.prog_id),
  );
  assert.deepEqual(ours, [], 'no BPF link of the trace is left');
  for (const ns of await traceNamespaces(state)) {
    const left = (await nftTables(ns)).filter((t) => t.name.startsWith(TRACE_TABLE_PREFIX));
    assert.deepEqual(left, [], `no nft trace table left in ${ns}`);
  }
}

export async function assertTraceClean(state: LabState, t: TraceResult): Promise<void> {
  await assertNothingLeft(state, t.kernel.progIds, t.kernel.loaderPid);
}

/** Hops are numbered in order and their times never go backwards. */
export function assertOrdered(hops: Hop[]): void {
  assert.ok(hops.length > 0, 'the trace saw the probe');
  hops.forEach((h, i) => {
    assert.equal(h.seq, i + 1);
    assert.ok(h.dtNs >= 0, `hop ${h.seq} is not earlier than hop ${h.seq - 1}`);
    if (i > 0) assert.equal(h.tNs, hops[i - 1]!.tNs + h.dtNs);
  });
}

export const hopsIn = (t: TraceResult, dir: 'request' | 'reply') => t.hops.filter((h) => h.direction === dir);

/** The probe's journey as "netns:device:hook" for one direction, for readable assertion messages. */
export const journey = (t: TraceResult, dir: 'request' | 'reply') =>
  hopsIn(t, dir)
    .map((h) => `${h.netns}:${h.device}:${h.hook}:${h.event}`)
    .join(' → ');

/**
 * Both directions of a probe between two nodes' pods went through a tunnel of weft's: encapsulated in
 * the sending node with the outer header `outer(sender, receiver)` and carried over the underlay switch
 * with it. Returns each direction's hops and the index of its encapsulation, for what a backend adds.
 */
export function assertTunnelled(
  t: TraceResult,
  state: LabState,
  ends: [NodeState, NodeState],
  outer: (src: NodeState, dst: NodeState) => OuterHeader,
): { dir: 'request' | 'reply'; src: NodeState; dst: NodeState; hops: Hop[]; iEnc: number }[] {
  const [a, b] = ends;
  return (
    [
      ['request', a, b],
      ['reply', b, a],
    ] as const
  ).map(([dir, src, dst]) => {
    const hops = hopsIn(t, dir);
    const iEnc = hops.findIndex((h) => h.event === 'encapsulated');
    assert.ok(iEnc >= 0, `${dir} is encapsulated: ${journey(t, dir)}`);
    assert.equal(hops[iEnc]!.netns, src.netns);
    assert.deepEqual(hops[iEnc]!.outer, [outer(src, dst)]);
    assert.ok(
      hops.some((h) => h.netns === state.switchNetns && h.outer.length === 1),
      `${dir} crosses the underlay switch encapsulated`,
    );
    return { dir, src, dst, hops, iEnc };
  });
}
