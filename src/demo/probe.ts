import { join } from 'node:path';
import { agentGet } from '../agent/client.js';
import type { LabState, NodeState, PodState } from '../lab/lab.js';
import { execIn, pingOnce } from '../lab/netns.js';
import type { Evidence } from './result.js';

/**
 * What the demo observes from the container's side, each observation kept as evidence: the exact
 * command (or agent request) and what it printed. Everything runs inside the lab's namespaces.
 */

/** Runs a command in a namespace; the evidence shows it as `ip netns exec NS …` would. */
export async function observe(
  netns: string,
  argv: string[],
  timeoutMs = 15_000,
): Promise<{ ok: boolean; evidence: Evidence; stdout: string; stderr: string }> {
  const r = await execIn(netns, argv, { allowFailure: true, timeoutMs });
  const out = `${r.stdout}${r.stderr}`.trim();
  return {
    ok: r.code === 0,
    stdout: r.stdout,
    stderr: r.stderr,
    evidence: {
      kind: 'command',
      what: `ip netns exec ${netns} ${argv.join(' ')}`,
      output: lastLines(out, 8),
    },
  };
}

const lastLines = (text: string, n: number) => text.split('\n').slice(-n).join('\n');

/** One ICMP echo, no retry. */
export const ping = (from: string, to: string, count = 1) =>
  observe(from, ['ping', '-n', '-c', String(count), '-W', '1', '-i', '0.2', to]);

/**
 * A ping whose IP packets are exactly `ipBytes` long with Don't Fragment set: ICMP payload
 * ipBytes − 28 (20 bytes IPv4 header, 8 bytes ICMP header).
 */
export const dfPing = (from: string, to: string, ipBytes: number) =>
  observe(from, ['ping', '-n', '-c', '1', '-W', '1', '-M', 'do', '-s', String(ipBytes - 28), to]);

export async function mtuOf(netns: string, dev = 'eth0'): Promise<number> {
  const r = await execIn(netns, ['cat', `/sys/class/net/${dev}/mtu`], { allowFailure: true });
  return Number(r.stdout.trim());
}

/** Every ordered pair of pods on different nodes: one ping each, no retry. */
export async function podPairs(s: LabState): Promise<{ total: number; answered: number; failed: string[] }> {
  const pairs = s.pods.flatMap((a) => s.pods.filter((b) => b.node !== a.node).map((b) => [a, b] as const));
  const ok = await Promise.all(pairs.map(([a, b]) => pingOnce(a.netns, b.ip)));
  return {
    total: pairs.length,
    answered: ok.filter(Boolean).length,
    failed: pairs.filter((_, i) => !ok[i]).map(([a, b]) => `${a.name}→${b.name}`),
  };
}

export interface PeerStatus {
  subnet: string;
  publicIP: string;
  path: string;
  state?: string;
  reason?: string;
}

/** A node's agent status (/status on its socket), and the request as evidence. */
export async function agentStatus(
  n: NodeState,
): Promise<{ peers: PeerStatus[]; podMtu?: number; backend?: string; raw: string; what: string }> {
  const sock = join(n.dir, 'agent.sock');
  const r = await agentGet(sock, '/status');
  const st = JSON.parse(r.body) as { peers?: PeerStatus[]; podMtu?: number; backend?: string };
  return {
    peers: st.peers ?? [],
    ...(st.podMtu !== undefined && { podMtu: st.podMtu }),
    ...(st.backend !== undefined && { backend: st.backend }),
    raw: r.body,
    what: `weft status --socket ${sock}`,
  };
}

/**
 * The source address a TCP server in `to` sees for a connection from `fromNs`: the external host's own
 * address when nothing translates it on the way in.
 */
export async function seenSource(fromNs: string, to: PodState, port = 5207): Promise<string | undefined> {
  const server = `const n=require('net');const s=n.createServer(k=>{console.log(k.remoteAddress);k.end();process.exit(0)});s.listen(${port},'0.0.0.0');setTimeout(()=>process.exit(3),8000)`;
  const srv = execIn(to.netns, [process.execPath, '-e', server], { allowFailure: true, timeoutMs: 10_000 });
  await new Promise((r) => setTimeout(r, 300));
  const client = `const k=require('net').connect(${port},'${to.ip}');k.on('error',()=>process.exit(2));k.resume();setTimeout(()=>process.exit(4),5000)`;
  await execIn(fromNs, [process.execPath, '-e', client], { allowFailure: true, timeoutMs: 8000 });
  const out = (await srv).stdout.trim().replace(/^::ffff:/, '');
  return out || undefined;
}

/** The pods' identities (namespace inode, eth0 ifindex and address): equal before and after = not restarted. */
export async function podIdentities(s: LabState): Promise<string[]> {
  return Promise.all(
    s.pods.map(async (p) => {
      const r = await execIn(
        p.netns,
        ['sh', '-c', 'readlink /proc/self/ns/net; cat /sys/class/net/eth0/ifindex'],
        {
          allowFailure: true,
        },
      );
      return `${p.name} ${p.ip} ${r.stdout.trim().replace(/\n/g, ' ifindex ')}`;
    }),
  );
}
