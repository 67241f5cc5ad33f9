import { agentGet } from '../agent/client.js';

/** The agent's HTTP client lives in src/agent/client.ts; re-exported for callers that import it here. */
export { agentGet, agentRequest } from '../agent/client.js';

interface StatusJson {
  ready: { ready: boolean; reasons: string[] };
  backend?: string;
  iface?: { name: string; publicIP: string; mtu: number };
  podMtu?: number;
  lease?: { subnet: string; reservation: boolean; vtepMac?: string };
  etcd: { endpoints: string[]; up: boolean };
  peers: { subnet: string; publicIP: string; path: string; state?: string; reason?: string }[];
  fastPath?: { mode: string; active: boolean; reason?: string; netDevs?: string[] };
  earlierCloud?: { state: string; pairs: number; routes: number; reason?: string };
  dataPath?: {
    kind: string;
    state: string;
    pid?: number;
    mode: string;
    workers: number;
    restarts: number;
    reason?: string;
    lastExit?: { at: string; reason: string };
    counters?: { tx: { packets: number }; rx: { packets: number }; drops: Record<string, number> };
  };
}

/** One line for a native data path (udp): its process, mode, restarts, and what it moved and dropped. */
function dataPathLine(d: NonNullable<StatusJson['dataPath']>): string {
  const c = d.counters;
  const drops = c ? Object.entries(c.drops).map(([k, v]) => `${k} ${v}`) : [];
  return [
    `${d.kind} ${d.state}${d.pid ? ` (pid ${d.pid}, ${d.mode}, ${d.workers} worker${d.workers > 1 ? 's' : ''})` : ''}`,
    `restarts ${d.restarts}${d.lastExit ? ` (last ${d.lastExit.at}: ${d.lastExit.reason})` : ''}`,
    ...(c ? [`packets tx ${c.tx.packets} rx ${c.rx.packets}`, `drops ${drops.join(', ') || 'none'}`] : []),
    ...(d.reason && d.state !== 'up' ? [d.reason] : []),
  ].join('; ');
}

export async function printStatus(socket: string, json: boolean): Promise<number> {
  const { body } = await agentGet(socket, '/status');
  if (json) {
    process.stdout.write(body + '\n');
    return 0;
  }
  const s = JSON.parse(body) as StatusJson;
  const lines = [
    `ready:    ${s.ready.ready ? 'yes' : `no (${s.ready.reasons.join('; ')})`}`,
    `backend:  ${s.backend ?? '-'}   pod MTU ${s.podMtu ?? '-'}`,
    `node:     ${s.iface ? `${s.iface.publicIP} on ${s.iface.name} (mtu ${s.iface.mtu})` : '-'}`,
    `lease:    ${s.lease ? `${s.lease.subnet}${s.lease.reservation ? ' (reservation)' : ''}${s.lease.vtepMac ? `  VTEP ${s.lease.vtepMac}` : ''}` : '-'}`,
    `etcd:     ${s.etcd.endpoints.join(',')} ${s.etcd.up ? 'up' : 'DOWN'}`,
    `fastpath: ${fastPathLine(s.fastPath)}`,
    ...(s.dataPath ? [`datapath: ${dataPathLine(s.dataPath)}`] : []),
    `peers:    ${s.peers.length}${countStates(s.peers)}`,
  ];
  if (s.earlierCloud && s.earlierCloud.state !== 'none')
    lines.push(
      `cloud:    ${s.earlierCloud.pairs} pair(s), ${s.earlierCloud.routes} route(s) of an earlier backend: ${s.earlierCloud.state}${s.earlierCloud.reason ? ` (${s.earlierCloud.reason})` : ''}`,
    );
  const head = ['SUBNET', 'PUBLIC IP', 'PATH', 'STATE', 'REASON'];
  const table = s.peers.map((p) => [p.subnet, p.publicIP, p.path, p.state ?? '-', p.reason ?? '']);
  const widths = [0, 1, 2, 3].map((i) => Math.max(head[i]!.length, ...table.map((r) => r[i]!.length)));
  const fmt = (r: string[]) =>
    r
      .map((c, i) => (i < 4 ? c.padEnd(widths[i]!) : c))
      .join('  ')
      .trimEnd();
  if (table.length) lines.push('', fmt(head), ...table.map(fmt));
  process.stdout.write(lines.join('\n') + '\n');
  return s.ready.ready ? 0 : 3;
}

function fastPathLine(f: StatusJson['fastPath']): string {
  if (!f || f.mode === 'none') return 'off';
  if (!f.active) return `${f.mode}: off (${f.reason ?? 'not attached'})`;
  return `${f.mode}: on (pod veths${f.netDevs?.length ? `, ${f.netDevs.join(', ')}` : ''})`;
}

/** " (2 ready, 1 pending)": the peers by readiness state. */
function countStates(peers: { state?: string }[]): string {
  const n = new Map<string, number>();
  for (const p of peers) if (p.state) n.set(p.state, (n.get(p.state) ?? 0) + 1);
  return n.size ? ` (${[...n].map(([k, v]) => `${v} ${k}`).join(', ')})` : '';
}
