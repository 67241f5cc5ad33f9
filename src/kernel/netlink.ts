import { closeSync, openSync } from 'node:fs';
import { executeOpsSync, type BatchFailure, type ExecuteOptions, type OpFailure } from './batch.js';
import { netnsName } from './exec.js';
import { render, type Op } from './ops.js';

import {
  attr,
  be16,
  describe,
  frame,
  load,
  nest,
  NLM_F_APPEND,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLM_F_REPLACE,
  parseAnswers,
  str,
  u32,
  u8,
  type Addon,
  type Answer,
  type Request,
} from './netlink-wire.js';

export { netlinkUnavailable } from './netlink-wire.js';

/**
 * Ops carried out over rtnetlink, in this process: no `ip` process per change. The transport is a small
 * Node-API addon (native/netlink.c, built next to this file as weft-netlink.node); the messages are
 * encoded and decoded here. Everything is synchronous: a request is answered by the kernel within the
 * system call, in microseconds (except a device deletion, see deleteLinkNow).
 *
 * When the addon is missing (no C compiler at build time) or cannot be loaded, `netlink()` returns
 * undefined and the kernel layer uses iproute2 for the same Ops. WEFT_NETLINK=0 forces that.
 */

// ------------------------------------------------------------------------------- rtnetlink

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
const IFA_LABEL = 3;
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
  encode(o: Exclude<Op, Iproute2Op>): Request {
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
      case 'link-rename':
        // The device by its index, its new name as IFLA_IFNAME.
        return {
          type: RTM_NEWLINK,
          flags: 0,
          body: Buffer.concat([ifinfomsg({ index: this.index(o.name) }), str(IFLA_IFNAME, o.to)]),
        };
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
        if (o.label !== undefined) attrs.push(str(IFA_LABEL, o.label));
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

/**
 * Ops that have no rtnetlink request: the kernel creates a TUN device only through ioctls on
 * /dev/net/tun (its rtnetlink "tun" kind refuses to create). iproute2 (`ip tuntap`) carries them out,
 * in their place in the order.
 */
type Iproute2Op = Extract<Op, { op: 'link-add-tun' }>;
const viaIproute2 = (o: Op): o is Iproute2Op => o.op === 'link-add-tun';

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
      if (viaIproute2(op)) {
        flush();
        s.forget(op.name);
        for (const f of executeOpsSync([op], { netns: o.netns })) fail(i, f.message);
        continue;
      }
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
      if (op.op === 'link-rename') [op.name, op.to].forEach((n) => s.forget(n));
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
