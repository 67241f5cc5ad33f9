import { KernelError } from './errors.js';
import { runTool, runToolSync } from './exec.js';
import { attr, attrsOf, describe, frame, load, parseAnswers, str, type Request } from './netlink-wire.js';

/**
 * nftables through `nft`: scripts applied as one transaction (`nft -f -`: all or nothing), JSON
 * listings, and deletion of a table that may be absent.
 */

function check(r: { code: number | null; stderr: string }, what: string): void {
  if (r.code !== 0) throw new KernelError(what, r.stderr.trim() || `exit ${String(r.code)}`);
}

/** Applies an nft script atomically; throws KernelError with nft's answer. */
export async function nftApply(script: string, o: { netns?: string } = {}): Promise<void> {
  check(await runTool('nft', ['-f', '-'], { input: script, netns: o.netns }), 'nft -f -');
}

export function nftApplySync(script: string, o: { netns?: string } = {}): void {
  check(runToolSync('nft', ['-f', '-'], { input: script, netns: o.netns }), 'nft -f -');
}

/** `nft -j list …`; undefined when the object does not exist. */
export async function nftList<T>(args: string[], o: { netns?: string } = {}): Promise<T | undefined> {
  const r = await runTool('nft', ['-j', 'list', ...args], { netns: o.netns });
  if (r.code !== 0) return undefined;
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new KernelError(`nft -j list ${args.join(' ')}`, 'printed output that is not JSON');
  }
}

/** Deletes a table; one that does not exist is not an error. */
export async function nftDeleteTable(
  family: string,
  name: string,
  o: { netns?: string } = {},
): Promise<void> {
  await runTool('nft', ['delete', 'table', family, name], { netns: o.netns });
}

// ----------------------------------------------------------------------- counters over netlink

const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_NFTABLES = 10;
const NFT_MSG_GETOBJ = 19;
const NFTA_OBJ_TABLE = 1;
const NFTA_OBJ_NAME = 2;
const NFTA_OBJ_TYPE = 3;
const NFTA_OBJ_DATA = 4;
const NFT_OBJECT_COUNTER = 1;
const NFTA_COUNTER_BYTES = 1;
const NFTA_COUNTER_PACKETS = 2;
const NFPROTO: Record<string, number> = { inet: 1, ip: 2, arp: 3, netdev: 5, bridge: 7, ip6: 10 };
const ENOENT = 2;

/**
 * A named nftables counter over netlink (one request, no `nft` process): its packets and bytes, or
 * undefined when the table or the counter does not exist. Null when netlink is unavailable.
 */
export function nftCounterNetlink(
  family: string,
  table: string,
  name: string,
): { packets: number; bytes: number } | undefined | null {
  const nl = load();
  const proto = NFPROTO[family];
  if (!nl || proto === undefined) return null;
  const fd = nl.socket(-1, NETLINK_NETFILTER);
  try {
    const nfgen = Buffer.from([proto, 0, 0, 0]);
    const typ = Buffer.alloc(4);
    typ.writeUInt32BE(NFT_OBJECT_COUNTER);
    const req: Request = {
      type: (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETOBJ,
      flags: 0,
      body: Buffer.concat([
        nfgen,
        str(NFTA_OBJ_TABLE, table),
        str(NFTA_OBJ_NAME, name),
        attr(NFTA_OBJ_TYPE, typ),
      ]),
    };
    const a = parseAnswers(nl.transact(fd, frame(req, 1), 1)).get(1);
    if (!a || a.errno === ENOENT) return undefined;
    if (a.errno !== 0) throw new Error(`nftables counter ${table}/${name}: ${describe(nl, a)}`);
    const msg = a.replies[0];
    if (!msg) return undefined;
    const data = attrsOf(msg, 16 + 4, msg.length).get(NFTA_OBJ_DATA);
    if (!data) return undefined;
    const c = attrsOf(data, 0, data.length);
    const num = (t: number) => Number(c.get(t)?.readBigUInt64BE(0) ?? 0n);
    return { packets: num(NFTA_COUNTER_PACKETS), bytes: num(NFTA_COUNTER_BYTES) };
  } finally {
    nl.close(fd);
  }
}

interface CounterJson {
  nftables: { counter?: { packets: number; bytes: number } }[];
}

/**
 * A named counter object of a table: over netlink when available (no process: it is read every few
 * seconds for /metrics), else `nft -j list counter`. Undefined when it does not exist.
 */
export async function nftCounter(
  family: string,
  table: string,
  name: string,
): Promise<{ packets: number; bytes: number } | undefined> {
  const fast = nftCounterNetlink(family, table, name);
  if (fast !== null) return fast;
  const j = await nftList<CounterJson>(['counter', family, table, name]);
  return j?.nftables.find((x) => x.counter)?.counter;
}
