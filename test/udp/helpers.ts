import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { agentGet } from '../../src/agent/client.js';
import type { NodeState } from '../../src/lab/lab.js';
import { inNs } from '../helpers/lab.js';

/** One value of the agent's /metrics (the first series whose labels include all of `labels`), or undefined. */
export async function metric(
  node: NodeState,
  name: string,
  labels: Record<string, string> = {},
): Promise<number | undefined> {
  const r = await agentGet(join(node.dir, 'agent.sock'), '/metrics');
  for (const line of r.body.split('\n')) {
    const m = /^([a-z_]+)(\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries(
      [...(m[3] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1]!, x[2]!] as const),
    );
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[4]);
  }
  return undefined;
}

export interface DataPathStatus {
  state: string;
  pid?: number;
  restarts: number;
  lastExit?: { reason: string };
  counters?: { tx: { packets: number }; rx: { packets: number }; drops: Record<string, number> };
}

export async function dataPath(node: NodeState): Promise<DataPathStatus | undefined> {
  const r = await agentGet(join(node.dir, 'agent.sock'), '/status');
  return (JSON.parse(r.body) as { dataPath?: DataPathStatus }).dataPath;
}

/** Sends UDP datagrams (given as bytes) from a namespace; `from` binds the source address. */
export async function sendDatagrams(
  ns: string,
  from: string,
  to: string,
  port: number,
  payloads: Buffer[],
): Promise<void> {
  const hex = JSON.stringify(payloads.map((p) => p.toString('hex')));
  const js = `const s=require('dgram').createSocket('udp4');s.bind(0,'${from}',async()=>{for(const h of ${hex}){await new Promise(r=>s.send(Buffer.from(h,'hex'),${port},'${to}',r))}s.close()})`;
  const r = await inNs(ns, [process.execPath, '-e', js]);
  if (r.code !== 0) throw new Error(`sending datagrams from ${ns} failed: ${r.stderr}`);
}

/** An IPv4 header (20 bytes, correct checksum) + payload; fields overridable to make bad ones. */
export function ipv4(o: {
  src: string;
  dst: string;
  proto?: number;
  payload?: Buffer;
  totalLength?: number;
  version?: number;
}): Buffer {
  const payload = o.payload ?? Buffer.alloc(0);
  const h = Buffer.alloc(20);
  h[0] = ((o.version ?? 4) << 4) | 5;
  h.writeUInt16BE(o.totalLength ?? 20 + payload.length, 2);
  h[8] = 64;
  h[9] = o.proto ?? 17;
  for (const [i, a] of [o.src, o.dst].entries())
    a.split('.').forEach((x, k) => (h[12 + i * 4 + k] = Number(x)));
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += h.readUInt16BE(i);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  h.writeUInt16BE(~sum & 0xffff, 10);
  return Buffer.concat([h, payload]);
}

export interface Captured {
  /** The IPv4 packet on the wire (link header stripped). */
  outer: Buffer;
}

/**
 * Captures up to `count` packets matching `filter` on `iface` inside `ns` with tcpdump while `during`
 * runs; returns the IPv4 packets as seen on the wire.
 */
export async function capture(
  ns: string,
  iface: string,
  filter: string,
  count: number,
  during: () => Promise<unknown>,
): Promise<Captured[]> {
  const dir = await mkdtemp(join(tmpdir(), 'weft-pcap-'));
  const file = join(dir, 'cap.pcap');
  try {
    const td = spawn(
      'ip',
      ['netns', 'exec', ns, 'tcpdump', '-U', '-n', '-i', iface, '-c', String(count), '-w', file, filter],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    const exited = new Promise<void>((r) => td.once('exit', () => r()));
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('tcpdump did not start')), 10_000);
      td.stderr.on('data', (d: Buffer) => {
        if (d.toString().includes('listening')) {
          clearTimeout(t);
          resolve();
        }
      });
    });
    await during();
    const t = setTimeout(() => td.kill('SIGINT'), 3000);
    await exited;
    clearTimeout(t);
    return parsePcap(await readFile(file));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Classic pcap (microsecond, little-endian): Ethernet (1) or raw IP (101/12) link types. */
export function parsePcap(b: Buffer): Captured[] {
  if (b.length < 24 || b.readUInt32LE(0) !== 0xa1b2c3d4) throw new Error('not a little-endian pcap file');
  const link = b.readUInt32LE(20);
  const out: Captured[] = [];
  for (let off = 24; off + 16 <= b.length;) {
    const caplen = b.readUInt32LE(off + 8);
    const frame = b.subarray(off + 16, off + 16 + caplen);
    off += 16 + caplen;
    if (link === 1) {
      if (frame.readUInt16BE(12) === 0x0800) out.push({ outer: frame.subarray(14) });
    } else out.push({ outer: frame });
  }
  return out;
}

export const ipString = (b: Buffer, off: number): string => [...b.subarray(off, off + 4)].join('.');
