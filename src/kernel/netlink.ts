import { closeSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { BatchFailure, ExecuteOptions, OpFailure } from './batch.js';
import { netnsName } from './exec.js';
import { render, type Op } from './ops.js';

/**
 * Ops carried out over rtnetlink, in this process: no `ip` process per change. The transport is a small
 * Node-API addon (native/netlink.c, built next to this file as weft-netlink.node); the messages are
 * encoded and decoded here. Everything is synchronous: a request is answered by the kernel within the
 * system call, in microseconds (except a device deletion, see deleteLinkNow).
 *
 * When the addon is missing (no C compiler at build time) or cannot be loaded, `netlink()` returns
 * undefined and the kernel layer uses iproute2 for the same Ops. WEFT_NETLINK=0 forces that.
 */

interface Addon {
  socket(nsFd: number, protocol?: number): number;
  close(fd: number): void;
  transact(fd: number, request: Buffer, finals: number): Buffer;
  deleteLink(name: string, timeoutMs: number): number;
  strerror(errno: number): string;
}

let addon: Addon | undefined | null = null;
let loadProblem = '';

function load(): Addon | undefined {
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

const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_REPLACE = 0x100;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
const NLM_F_APPEND = 0x800;
const NLM_F_ACK_TLVS = 0x200; // in an error answer: extended-ACK attributes follow
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const NLMSGERR_ATTR_MSG = 1;
const NLA_F_NESTED = 0x8000;

const RTM_NEWLINK = 16;
const RTM_DELLINK = 17;
const RTM_GETLINK = 18;
const RTM_NEWADDR = 20;
const RTM_DELADDR = 21;
const RTM_NEWROUTE = 24;
const RTM_DELROUTE = 25;
const RTM_NEWNEIGH = 28;
const RTM_DELNEIGH = 29;

const AF_UNSPEC = 0;
const AF_INET = 2;
const AF_BRIDGE = 7;
const AF_INET6 = 10;
const IFF_UP = 0x1;

const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_MASTER = 10;
const IFLA_LINKINFO = 18;
const IFLA_AF_SPEC = 26;
const IFLA_NET_NS_FD = 28;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const IFLA_INFO_SLAVE_KIND = 4;
const IFLA_INFO_SLAVE_DATA = 5;
const VETH_INFO_PEER = 1;
const IFLA_BRPORT_MODE = 4;
const IFLA_INET6_ADDR_GEN_MODE = 8;
const IN6_ADDR_GEN_MODE_NONE = 1;
const IFLA_VXLAN_ID = 1;
const IFLA_VXLAN_LINK = 3;
const IFLA_VXLAN_LOCAL = 4;
const IFLA_VXLAN_LEARNING = 7;
const IFLA_VXLAN_PORT = 15;

const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_BROADCAST = 4;

const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RT_TABLE_MAIN = 254;
const RTPROT_BOOT = 3;
const RT_SCOPE_UNIVERSE = 0;
const RT_SCOPE_LINK = 253;
const RT_SCOPE_NOWHERE = 255;
const RTN_UNICAST = 1;
const RTNH_F_ONLINK = 4;

const NDA_DST = 1;
const NDA_LLADDR = 2;
const NUD_NOARP = 0x40;
const NUD_PERMANENT = 0x80;
const NTF_SELF = 0x2;

const ENODEV = 19;

// ------------------------------------------------------------------------------- encoding

const align = (n: number) => (n + 3) & ~3;

function attr(type: number, payload: Buffer): Buffer {
  const len = 4 + payload.length;
  const b = Buffer.alloc(align(len));
  b.writeUInt16LE(len, 0);
  b.writeUInt16LE(type, 2);
  payload.copy(b, 4);
  return b;
}
const nest = (type: number, ...attrs: Buffer[]) => attr(type | NLA_F_NESTED, Buffer.concat(attrs));
const str = (type: number, s: string) => attr(type, Buffer.from(`${s}\0`));
function u32(type: number, v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return attr(type, b);
}
const u8 = (type: number, v: number) => attr(type, Buffer.from([v]));
function be16(type: number, v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v);
  return attr(type, b);
}
function ip4(text: string): Buffer {
  const parts = text.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255))
    throw new Error(`"${text}" is not an IPv4 address`);
  return Buffer.from(parts);
}
function mac(text: string): Buffer {
  const parts = text.split(':').map((h) => parseInt(h, 16));
  if (parts.length !== 6 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255))
    throw new Error(`"${text}" is not a MAC address`);
  return Buffer.from(parts);
}
function cidr(text: string): { addr: Buffer; len: number } {
  if (text === 'default') return { addr: Buffer.alloc(4), len: 0 };
  const [a, l] = text.split('/');
  const len = l === undefined ? 32 : Number(l);
  if (!Number.isInteger(len) || len < 0 || len > 32) throw new Error(`"${text}" is not an IPv4 prefix`);
  return { addr: ip4(a!), len };
}

function ifinfomsg(o: { family?: number; index?: number; flags?: number; change?: number } = {}): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt8(o.family ?? AF_UNSPEC, 0);
  b.writeInt32LE(o.index ?? 0, 4);
  b.writeUInt32LE(o.flags ?? 0, 8);
  b.writeUInt32LE(o.change ?? 0, 12);
  return b;
}
function ifaddrmsg(len: number, index: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt8(AF_INET, 0);
  b.writeUInt8(len, 1);
  b.writeUInt32LE(index, 4);
  return b;
}
function rtmsg(o: { len: number; proto: number; scope: number; type: number; flags: number }): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt8(AF_INET, 0);
  b.writeUInt8(o.len, 1);
  b.writeUInt8(RT_TABLE_MAIN, 4);
  b.writeUInt8(o.proto, 5);
  b.writeUInt8(o.scope, 6);
  b.writeUInt8(o.type, 7);
  b.writeUInt32LE(o.flags, 8);
  return b;
}
function ndmsg(family: number, index: number, state: number, flags: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt8(family, 0);
  b.writeInt32LE(index, 4);
  b.writeUInt16LE(state, 8);
  b.writeUInt8(flags, 10);
  return b;
}

interface Request {
  type: number;
  flags: number;
  body: Buffer;
}

function frame(r: Request, seq: number): Buffer {
  const hdr = Buffer.alloc(16);
  hdr.writeUInt32LE(16 + r.body.length, 0);
  hdr.writeUInt16LE(r.type, 4);
  hdr.writeUInt16LE(r.flags | NLM_F_REQUEST | NLM_F_ACK, 6);
  hdr.writeUInt32LE(seq, 8);
  return Buffer.concat([hdr, r.body]);
}

/** The answer to one request: errno 0 and its payload messages, or the kernel's error. */
interface Answer {
  errno: number;
  extack?: string;
  replies: Buffer[];
}

function parseAnswers(buf: Buffer): Map<number, Answer> {
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
function describe(nl: Addon, a: Answer): string {
  const why = nl.strerror(a.errno);
  return a.extack ? `${a.extack.replace(/\.$/, '')} (${why})` : why;
}

// ------------------------------------------------------------------------------- a session

/** Raised while encoding an Op: the Op cannot be sent (no such device, a malformed value). */
class OpProblem extends Error {}

/** One netlink socket in one namespace, with the device indexes it has looked up. */
class Session {
  private seq = 1;
  private readonly indexes = new Map<string, number>();
  private readonly fds: number[] = [];
  readonly fd: number;

  constructor(
    private readonly nl: Addon,
    netns: string | undefined,
  ) {
    if (netns === undefined) this.fd = nl.socket(-1);
    else {
      const ns = this.openNetns(netns);
      this.fd = nl.socket(ns);
    }
  }

  openNetns(netns: string): number {
    const name = netnsName(netns);
    const fd = openSync(name !== undefined ? `/run/netns/${name}` : netns, 'r');
    this.fds.push(fd);
    return fd;
  }

  close(): void {
    this.nl.close(this.fd);
    for (const fd of this.fds) closeSync(fd);
  }

  /** Sends requests in one datagram and returns each one's answer, in order. */
  transact(reqs: Request[]): Answer[] {
    const first = this.seq;
    const buf = Buffer.concat(reqs.map((r) => frame(r, this.seq++)));
    const answers = parseAnswers(this.nl.transact(this.fd, buf, reqs.length));
    return reqs.map((_, i) => answers.get(first + i) ?? { errno: 0, replies: [] });
  }

  index(dev: string): number {
    const known = this.indexes.get(dev);
    if (known !== undefined) return known;
    const [a] = this.transact([
      { type: RTM_GETLINK, flags: 0, body: Buffer.concat([ifinfomsg(), str(IFLA_IFNAME, dev)]) },
    ]);
    const reply = a!.replies[0];
    if (a!.errno !== 0 || !reply) {
      if (a!.errno === ENODEV || a!.errno === 0) throw new OpProblem(`Cannot find device "${dev}"`);
      throw new OpProblem(describe(this.nl, a!));
    }
    const index = reply.readInt32LE(16 + 4);
    this.indexes.set(dev, index);
    return index;
  }

  forget(dev: string): void {
    this.indexes.delete(dev);
  }

  /** The request of an Op (looking up the devices it names). */
  encode(o: Op): Request {
    switch (o.op) {
      case 'link-add-veth': {
        const p = o.peer;
        const peer = Buffer.concat([
          ifinfomsg(),
          str(IFLA_IFNAME, p.name),
          ...(p.mtu !== undefined ? [u32(IFLA_MTU, p.mtu)] : []),
          ...(p.address !== undefined ? [attr(IFLA_ADDRESS, mac(p.address))] : []),
          ...(p.netns !== undefined ? [u32(IFLA_NET_NS_FD, this.openNetns(p.netns))] : []),
        ]);
        return this.newLink(o, 'veth', [nest(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer))]);
      }
      case 'link-add-bridge':
        return this.newLink(o, 'bridge', []);
      case 'link-add-vxlan':
        return this.newLink(o, 'vxlan', [
          nest(
            IFLA_INFO_DATA,
            u32(IFLA_VXLAN_ID, o.vni),
            attr(IFLA_VXLAN_LOCAL, ip4(o.local)),
            u32(IFLA_VXLAN_LINK, this.index(o.dev)),
            be16(IFLA_VXLAN_PORT, o.port),
            u8(IFLA_VXLAN_LEARNING, 0),
          ),
        ]);
      case 'link-set': {
        const up = o.up === undefined ? {} : { flags: o.up ? IFF_UP : 0, change: IFF_UP };
        const attrs = [
          str(IFLA_IFNAME, o.name),
          ...(o.master !== undefined ? [u32(IFLA_MASTER, this.index(o.master))] : []),
          ...(o.mtu !== undefined ? [u32(IFLA_MTU, o.mtu)] : []),
          ...(o.noIpv6LinkLocal
            ? [nest(IFLA_AF_SPEC, nest(AF_INET6, u8(IFLA_INET6_ADDR_GEN_MODE, IN6_ADDR_GEN_MODE_NONE)))]
            : []),
          ...(o.hairpin !== undefined
            ? [
                nest(
                  IFLA_LINKINFO,
                  str(IFLA_INFO_SLAVE_KIND, 'bridge'),
                  nest(IFLA_INFO_SLAVE_DATA, u8(IFLA_BRPORT_MODE, o.hairpin ? 1 : 0)),
                ),
              ]
            : []),
        ];
        return { type: RTM_NEWLINK, flags: 0, body: Buffer.concat([ifinfomsg(up), ...attrs]) };
      }
      case 'link-del':
        return { type: RTM_DELLINK, flags: 0, body: Buffer.concat([ifinfomsg(), str(IFLA_IFNAME, o.name)]) };
      case 'addr-add':
      case 'addr-replace':
      case 'addr-del': {
        const { addr, len } = cidr(o.cidr);
        const attrs = [attr(IFA_LOCAL, addr), attr(IFA_ADDRESS, addr)];
        if (o.broadcast && len <= 30) {
          const bcast = Buffer.from(addr);
          bcast.writeUInt32BE((bcast.readUInt32BE(0) | (len === 0 ? 0xffffffff : 2 ** (32 - len) - 1)) >>> 0);
          attrs.push(attr(IFA_BROADCAST, bcast));
        }
        const body = Buffer.concat([ifaddrmsg(len, this.index(o.dev)), ...attrs]);
        if (o.op === 'addr-del') return { type: RTM_DELADDR, flags: 0, body };
        const flags = NLM_F_CREATE | (o.op === 'addr-add' ? NLM_F_EXCL : NLM_F_REPLACE);
        return { type: RTM_NEWADDR, flags, body };
      }
      case 'route-add':
      case 'route-append':
      case 'route-replace':
      case 'route-del': {
        const { addr, len } = cidr(o.dst);
        const del = o.op === 'route-del';
        const attrs = [
          ...(len > 0 ? [attr(RTA_DST, addr)] : []),
          ...(o.via !== undefined ? [attr(RTA_GATEWAY, ip4(o.via))] : []),
          ...(o.dev !== undefined ? [u32(RTA_OIF, this.index(o.dev))] : []),
        ];
        // As iproute2 does: a delete matches any scope and type; an add without gateway is link-scoped.
        const scope = del ? RT_SCOPE_NOWHERE : o.via === undefined ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
        const head = rtmsg({
          len,
          proto: o.proto ?? (del ? 0 : RTPROT_BOOT),
          scope,
          type: del ? 0 : RTN_UNICAST,
          flags: o.onlink ? RTNH_F_ONLINK : 0,
        });
        const flags = del
          ? 0
          : NLM_F_CREATE |
            (o.op === 'route-add' ? NLM_F_EXCL : o.op === 'route-append' ? NLM_F_APPEND : NLM_F_REPLACE);
        return { type: del ? RTM_DELROUTE : RTM_NEWROUTE, flags, body: Buffer.concat([head, ...attrs]) };
      }
      case 'neigh-replace':
        return {
          type: RTM_NEWNEIGH,
          flags: NLM_F_CREATE | NLM_F_REPLACE,
          body: Buffer.concat([
            ndmsg(AF_INET, this.index(o.dev), NUD_PERMANENT, 0),
            attr(NDA_DST, ip4(o.ip)),
            attr(NDA_LLADDR, mac(o.lladdr)),
          ]),
        };
      case 'neigh-del':
        return {
          type: RTM_DELNEIGH,
          flags: 0,
          body: Buffer.concat([ndmsg(AF_INET, this.index(o.dev), 0, 0), attr(NDA_DST, ip4(o.ip))]),
        };
      case 'fdb-replace':
      case 'fdb-append':
        return {
          type: RTM_NEWNEIGH,
          flags: NLM_F_CREATE | (o.op === 'fdb-replace' ? NLM_F_REPLACE : NLM_F_APPEND),
          body: Buffer.concat([
            ndmsg(AF_BRIDGE, this.index(o.dev), NUD_PERMANENT, NTF_SELF),
            attr(NDA_LLADDR, mac(o.mac)),
            attr(NDA_DST, ip4(o.dst)),
          ]),
        };
      case 'fdb-del':
        return {
          type: RTM_DELNEIGH,
          flags: 0,
          body: Buffer.concat([
            ndmsg(AF_BRIDGE, this.index(o.dev), NUD_NOARP, NTF_SELF),
            attr(NDA_LLADDR, mac(o.mac)),
            ...(o.dst !== undefined ? [attr(NDA_DST, ip4(o.dst))] : []),
          ]),
        };
    }
  }

  private newLink(
    o: { name: string; mtu?: number; address?: string },
    kind: string,
    info: Buffer[],
  ): Request {
    return {
      type: RTM_NEWLINK,
      flags: NLM_F_CREATE | NLM_F_EXCL,
      body: Buffer.concat([
        ifinfomsg(),
        str(IFLA_IFNAME, o.name),
        ...(o.mtu !== undefined ? [u32(IFLA_MTU, o.mtu)] : []),
        ...(o.address !== undefined ? [attr(IFLA_ADDRESS, mac(o.address))] : []),
        nest(IFLA_LINKINFO, str(IFLA_INFO_KIND, kind), ...info),
      ]),
    };
  }
}

// ------------------------------------------------------------------------------- nftables

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

/** The attributes of a message payload from `off` on, by type (the nested flag masked off). */
function attrsOf(buf: Buffer, off: number, end: number): Map<number, Buffer> {
  const m = new Map<number, Buffer>();
  for (let p = off; p + 4 <= end;) {
    const len = buf.readUInt16LE(p);
    if (len < 4) break;
    m.set(buf.readUInt16LE(p + 2) & 0x3fff, buf.subarray(p + 4, p + len));
    p += align(len);
  }
  return m;
}

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

/** How many requests go into one datagram: their ACKs must fit the socket's receive buffer. */
const CHUNK = 200;

/**
 * Carries out Ops in order over netlink, as executeOps does with iproute2: every Op is attempted
 * (unless stopOnFailure), and each failure names its Op, its iproute2 command line and the answer.
 */
export function executeNetlink(nl: Addon, ops: readonly Op[], o: ExecuteOptions = {}): OpFailure[] {
  const failures: OpFailure[] = [];
  const s = new Session(nl, o.netns);
  const fail = (index: number, message: string) => {
    const r = render(ops[index]!);
    failures.push({ index, op: ops[index]!, command: `${r.tool} ${r.line}`, message });
  };
  try {
    let pending: { index: number; req: Request }[] = [];
    const flush = () => {
      if (pending.length === 0) return;
      const answers = s.transact(pending.map((p) => p.req));
      answers.forEach((a, i) => {
        if (a.errno !== 0) fail(pending[i]!.index, describe(nl, a));
      });
      pending = [];
    };
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!;
      if (o.stopOnFailure && failures.length > 0) break;
      let req: Request;
      try {
        req = s.encode(op);
      } catch (e) {
        // A device this batch creates may not exist yet: send what is queued, then look again.
        if (!(e instanceof OpProblem) || pending.length === 0) {
          fail(i, e instanceof Error ? e.message : String(e));
          continue;
        }
        flush();
        try {
          req = s.encode(op);
        } catch (again) {
          fail(i, again instanceof Error ? again.message : String(again));
          continue;
        }
      }
      if (op.op === 'link-del' || op.op.startsWith('link-add')) s.forget((op as { name: string }).name);
      pending.push({ index: i, req });
      if (o.stopOnFailure || pending.length >= CHUNK) flush();
    }
    flush();
  } finally {
    s.close();
  }
  return failures.sort((a, b) => a.index - b.index);
}

/** The netlink implementation when its addon loaded; undefined otherwise (use iproute2). */
export function netlink(): ((ops: readonly Op[], o?: ExecuteOptions) => OpFailure[]) | undefined {
  const nl = load();
  return nl ? (ops, o) => executeNetlink(nl, ops, o) : undefined;
}

/**
 * Deletes a device of the caller's namespace and returns once it is gone from the namespace (closed,
 * unlisted, its addresses and bridge port removed), not after the ~20 ms the kernel then spends
 * freeing it: a CNI DEL need not wait for that. `done` also when it did not exist; undefined when
 * netlink is unavailable.
 */
export function deleteLinkNow(
  name: string,
): { done: true } | { done: false; failure: BatchFailure } | undefined {
  const nl = load();
  if (!nl) return undefined;
  const errno = nl.deleteLink(name, 5000);
  if (errno === 0 || errno === ENODEV) return { done: true };
  return { done: false, failure: { line: 1, command: `ip link del ${name}`, message: nl.strerror(errno) } };
}
