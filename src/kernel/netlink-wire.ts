import { createRequire } from 'node:module';

/**
 * The netlink wire, shared by rtnetlink (netlink.ts: links, addresses, routes, neighbours) and
 * nftables (nft.ts: counters): the native transport (native/netlink.c, loaded once), attributes, and
 * the framing of requests and answers. The addon is missing when the build had no C compiler, and is
 * not used with WEFT_NETLINK=0: load() then says undefined and callers use iproute2 or nft.
 */

export interface Addon {
  socket(nsFd: number, protocol?: number): number;
  close(fd: number): void;
  transact(fd: number, request: Buffer, finals: number): Buffer;
  deleteLink(name: string, timeoutMs: number): number;
  strerror(errno: number): string;
}

let addon: Addon | undefined | null = null;
let loadProblem = '';

export function load(): Addon | undefined {
  if (addon !== null) return addon;
  addon = undefined;
  if (process.env.WEFT_NETLINK === '0') {
    loadProblem = 'disabled by WEFT_NETLINK=0';
    return undefined;
  }
  try {
    addon = createRequire(import.meta.url)('./weft-netlink.node') as Addon;
  } catch (e) {
    loadProblem = e instanceof Error ? e.message.split('\n')[0]! : String(e);
  }
  return addon;
}

/** Why netlink is not used (for a log line), or undefined when it is. */
export function netlinkUnavailable(): string | undefined {
  return load() ? undefined : loadProblem;
}

// ------------------------------------------------------------------------------- constants

export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
export const NLM_F_APPEND = 0x800;
const NLM_F_ACK_TLVS = 0x200; // in an error answer: extended-ACK attributes follow
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const NLMSGERR_ATTR_MSG = 1;
export const NLA_F_NESTED = 0x8000;

// ------------------------------------------------------------------------------- encoding

export const align = (n: number) => (n + 3) & ~3;

export function attr(type: number, payload: Buffer): Buffer {
  const len = 4 + payload.length;
  const b = Buffer.alloc(align(len));
  b.writeUInt16LE(len, 0);
  b.writeUInt16LE(type, 2);
  payload.copy(b, 4);
  return b;
}
export const nest = (type: number, ...attrs: Buffer[]) => attr(type | NLA_F_NESTED, Buffer.concat(attrs));
export const str = (type: number, s: string) => attr(type, Buffer.from(`${s}\0`));
export function u32(type: number, v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return attr(type, b);
}
export const u8 = (type: number, v: number) => attr(type, Buffer.from([v]));
export function be16(type: number, v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v);
  return attr(type, b);
}
export interface Request {
  type: number;
  flags: number;
  body: Buffer;
}

export function frame(r: Request, seq: number): Buffer {
  const hdr = Buffer.alloc(16);
  hdr.writeUInt32LE(16 + r.body.length, 0);
  hdr.writeUInt16LE(r.type, 4);
  hdr.writeUInt16LE(r.flags | NLM_F_REQUEST | NLM_F_ACK, 6);
  hdr.writeUInt32LE(seq, 8);
  return Buffer.concat([hdr, r.body]);
}

/** The answer to one request: errno 0 and its payload messages, or the kernel's error. */
export interface Answer {
  errno: number;
  extack?: string;
  replies: Buffer[];
}

export function parseAnswers(buf: Buffer): Map<number, Answer> {
  const out = new Map<number, Answer>();
  const get = (seq: number) => out.get(seq) ?? out.set(seq, { errno: 0, replies: [] }).get(seq)!;
  for (let off = 0; off + 16 <= buf.length;) {
    const len = buf.readUInt32LE(off);
    if (len < 16 || off + len > buf.length) break;
    const type = buf.readUInt16LE(off + 4);
    const flags = buf.readUInt16LE(off + 6);
    const seq = buf.readUInt32LE(off + 8);
    const a = get(seq);
    if (type === NLMSG_ERROR) {
      a.errno = -buf.readInt32LE(off + 16);
      if (flags & NLM_F_ACK_TLVS) {
        // error (4) + the request's header (16, payload capped) + attributes
        for (let p = off + 36; p + 4 <= off + len;) {
          const alen = buf.readUInt16LE(p);
          if (alen < 4) break;
          if (buf.readUInt16LE(p + 2) === NLMSGERR_ATTR_MSG)
            a.extack = buf.toString('utf8', p + 4, p + alen).replace(/\0.*$/s, '');
          p += align(alen);
        }
      }
    } else if (type !== NLMSG_DONE) a.replies.push(buf.subarray(off, off + len));
    off += align(len);
  }
  return out;
}

/** The text iproute2 would print for the same answer, so that errors.ts's predicates hold for both. */
export function describe(nl: Addon, a: Answer): string {
  const why = nl.strerror(a.errno);
  return a.extack ? `${a.extack.replace(/\.$/, '')} (${why})` : why;
}

/** The attributes of a message payload from `off` on, by type (the nested flag masked off). */
export function attrsOf(buf: Buffer, off: number, end: number): Map<number, Buffer> {
  const m = new Map<number, Buffer>();
  for (let p = off; p + 4 <= end;) {
    const len = buf.readUInt16LE(p);
    if (len < 4) break;
    m.set(buf.readUInt16LE(p + 2) & 0x3fff, buf.subarray(p + 4, p + len));
    p += align(len);
  }
  return m;
}
