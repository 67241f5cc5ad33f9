import { randomBytes, randomInt } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPLY_MAGIC, REQUEST_MAGIC } from '../lab/serve.js';
import { WeftError } from '../util/errors.js';
import { TraceLoader } from './native.js';
import { traceTable, traceTableName } from './nft-trace.js';
import { PROTO_NUMBER, type Proto } from './types.js';

/**
 * `weft trace-node`: the node-local half of a trace on one host, for a real cluster whose hosts do not
 * share a clock. Every host watches its own namespaces for the same probe (same signature and source
 * port, chosen by the first host and passed to the others); the sending host also sends it. Each
 * prints its sightings with its own timestamps: an orchestrator orders them per host and reports
 * per-host residence times and the round trip measured on the sender, never cross-host deltas.
 */
export interface NodeTraceOptions {
  netns: string[];
  proto: Proto;
  dst: string;
  dport: number;
  sport?: number;
  sig?: string;
  nft: string[];
  sendFrom?: string;
  durationMs: number;
}

const nsPath = (n: string) => (n.startsWith('/') ? n : `/run/netns/${n}`);

export async function traceNode(o: NodeTraceOptions): Promise<void> {
  if (!(o.proto in PROTO_NUMBER)) throw new WeftError(`--proto: use icmp, tcp or udp, not "${o.proto}"`);
  const sport = o.sport ?? randomInt(40000, 60000);
  const sig = o.sig ? Buffer.from(o.sig, 'hex') : Buffer.concat([REQUEST_MAGIC, randomBytes(12)]);
  if (sig.length !== 16) throw new WeftError('--sig must be 16 bytes in hex (32 characters)');
  const out = (x: unknown) => process.stdout.write(JSON.stringify(x) + '\n');
  out({ ev: 'probe', proto: o.proto, dst: o.dst, dport: o.dport, sport, sig: sig.toString('hex') });
  const loader = await TraceLoader.start();
  for (const e of loader.events) out(e); // "ready": its pid and program ids, for checking afterwards
  loader.listeners.push((e) => out(e));
  const tmp = await mkdtemp(join(tmpdir(), 'weft-trace-node-'));
  try {
    loader.send(
      `probe proto=${PROTO_NUMBER[o.proto]} daddr=${o.dst} sport=${sport} dport=${o.dport} sig=${sig.toString('hex')} reply=${REPLY_MAGIC.toString('hex')}`,
    );
    for (const n of o.netns) loader.send(`watch ${nsPath(n)}`);
    if (o.nft.length) {
      const script = join(tmp, 'trace.nft');
      await writeFile(script, traceTable(traceTableName(process.pid), o.proto, sig.subarray(4), sport));
      for (const n of o.nft) loader.send(`nft ${nsPath(n)} ${script}`);
    }
    if (!(await loader.setUp(o.netns.map(nsPath), o.nft.map(nsPath))))
      out({ ev: 'warning', message: 'set-up did not finish in 15 s: some namespaces are not watched' });
    loader.send('arm');
    if (o.sendFrom) loader.send(`send ${nsPath(o.sendFrom)} ${Math.max(100, o.durationMs - 200)}`);
    await new Promise((r) => setTimeout(r, o.durationMs));
    loader.send('stats');
    await loader.waitFor((e) => e.ev === 'stats', 1000);
  } finally {
    await loader.close();
    await rm(tmp, { recursive: true, force: true });
  }
}
