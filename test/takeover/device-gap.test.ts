import { test } from 'node:test';
import assert from 'node:assert/strict';
import { run } from '../../src/util/exec.js';
import { inNs, uniqueName } from '../helpers/lab.js';

/**
 * Issue 14: which way of moving Flannel's VXLAN device to weft leaves the shortest gap? Two namespaces
 * joined by a veth, each with a Flannel-style VXLAN device; A pings B's tunnel address every 1 ms while
 * one of three moves runs on A, with plain ip/bridge commands as weft would issue them:
 *   live      `ip link set flannel.1 name weft.1` while up (kernels ≥ 6.2: nothing is flushed)
 *   down-up   down, rename, up, neighbour and route put back, in one ip -batch (older kernels)
 *   replace   delete, create weft.1 with the same MAC, address, up, neighbour (ip), FDB (bridge), route (ip)
 * It prints the packets lost (≈ ms of gap) and the wall time of each move; it asserts only that the
 * overlay works after each.
 */
test('the gap of each way to move the VXLAN device', { timeout: 180_000 }, async (t) => {
  const lab = uniqueName('g');
  const A = `wl-${lab}-a`;
  const B = `wl-${lab}-b`;
  t.after(async () => {
    for (const ns of [A, B]) await run('ip', ['netns', 'del', ns], { allowFailure: true });
  });
  const sh = async (ns: string, script: string) => {
    const r = await inNs(ns, ['sh', '-ec', script]);
    assert.equal(r.code, 0, `${script}: ${r.stderr}`);
  };
  await run('ip', ['netns', 'add', A]);
  await run('ip', ['netns', 'add', B]);
  await run('ip', ['link', 'add', 'eth0', 'netns', A, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', B]);
  const MAC_A = '02:aa:00:00:00:01';
  const MAC_B = '02:bb:00:00:00:02';
  const vtep = (
    ns: string,
    me: string,
    mac: string,
    sub: number,
    peer: string,
    peerMac: string,
    peerSub: number,
  ) =>
    sh(
      ns,
      `ip link del flannel.1 2>/dev/null || true; ip link del weft.1 2>/dev/null || true
       ip link add flannel.1 address ${mac} mtu 1450 type vxlan id 1 local ${me} dev eth0 dstport 8472 nolearning
       ip addr add 10.244.${sub}.0/32 dev flannel.1; ip link set flannel.1 up
       ip neigh replace 10.244.${peerSub}.0 lladdr ${peerMac} dev flannel.1 nud permanent
       bridge fdb replace ${peerMac} dev flannel.1 dst ${peer} self permanent
       ip route replace 10.244.${peerSub}.0/24 via 10.244.${peerSub}.0 dev flannel.1 onlink`,
    );
  await sh(A, 'ip link set lo up; ip addr add 198.18.0.11/24 dev eth0; ip link set eth0 up');
  await sh(B, 'ip link set lo up; ip addr add 198.18.0.12/24 dev eth0; ip link set eth0 up');
  await vtep(B, '198.18.0.12', MAC_B, 2, '198.18.0.11', MAC_A, 1);

  const moves: Record<string, string[][]> = {
    live: [['ip', 'link set dev flannel.1 name weft.1']],
    'down-up': [
      [
        'ip',
        'link set dev flannel.1 down\nlink set dev flannel.1 name weft.1\nlink set dev weft.1 up\n' +
          `neigh replace 10.244.2.0 lladdr ${MAC_B} dev weft.1 nud permanent\n` +
          'route replace 10.244.2.0/24 via 10.244.2.0 dev weft.1 onlink proto 87',
      ],
    ],
    replace: [
      [
        'ip',
        `link del flannel.1\nlink add weft.1 address ${MAC_A} mtu 1450 type vxlan id 1 local 198.18.0.11 dev eth0 dstport 8472 nolearning\n` +
          `addr add 10.244.1.0/32 dev weft.1\nlink set weft.1 up\nneigh replace 10.244.2.0 lladdr ${MAC_B} dev weft.1 nud permanent`,
      ],
      ['bridge', `fdb replace ${MAC_B} dev weft.1 dst 198.18.0.12 self permanent`],
      ['ip', 'route replace 10.244.2.0/24 via 10.244.2.0 dev weft.1 onlink proto 87'],
    ],
  };
  const trials = Number(process.env.WEFT_TAKEOVER_RUNS ?? 2);
  const figures: string[] = [];
  for (const [how, steps] of Object.entries(moves)) {
    const lost: number[] = [];
    const took: number[] = [];
    for (let i = 0; i < trials; i++) {
      await vtep(A, '198.18.0.11', MAC_A, 1, '198.18.0.12', MAC_B, 2);
      const ping = inNs(A, ['ping', '-q', '-i', '0.001', '-W', '1', '-c', '1500', '10.244.2.0'], {
        timeoutMs: 30_000,
      });
      await new Promise((r) => setTimeout(r, 500));
      const t0 = performance.now();
      for (const [tool, lines] of steps) {
        const r = await inNs(A, [tool!, '-batch', '-'], { input: lines + '\n' });
        assert.equal(r.code, 0, `${how}: ${r.stderr}`);
      }
      took.push(performance.now() - t0);
      const out = (await ping).stdout;
      const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
      assert.ok(m, out);
      lost.push(Number(m[1]) - Number(m[2]));
      const after = await inNs(A, ['ping', '-c', '1', '-W', '1', '10.244.2.0']);
      assert.equal(after.code, 0, `${how}: the overlay works after the move`);
    }
    const line = `${how}: lost ${lost.join(', ')} of 1500 pings at 1 ms; move took ${took.map((x) => x.toFixed(1)).join(', ')} ms`;
    figures.push(line);
    console.log(`# ${line}`);
  }
  console.log(`# device gap:\n# ${figures.join('\n# ')}`);
});
