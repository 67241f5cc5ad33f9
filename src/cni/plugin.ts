/**
 * The CNI verbs of weft-cni: a Linux bridge whose address is the gateway of the node's lease (from the
 * agent's subnet.env), one veth pair per attachment, addresses from weft's own allocation store.
 *
 * Kernel changes are Ops carried out by the kernel layer (src/kernel): in-process over netlink when its
 * addon is built, else as `ip -batch` processes. An ADD is two steps in the common case: one in the
 * node's namespace (veth pair created with its peer directly inside the pod's namespace, enslaved, up)
 * and one inside the pod's namespace (address, up, routes); the bridge is checked without asking the
 * kernel when the last ADD left it right. A DEL deletes the host veth and returns once it is gone.
 */
import { mkdirSync, readFileSync, renameSync, statfsSync, writeFileSync } from 'node:fs';
import { threadId } from 'node:worker_threads';
import { parseSubnetEnv, type SubnetEnv } from '../config/subnet-env.js';
import { describeError } from '../util/errors.js';
import { formatIPv4, parseIPv4, Cidr, type IPv4 } from '../util/ipv4.js';
import { compareVersions, type CniEnv, type Dns, type NetConf } from './config.js';
import { CniError, ERR } from './errors.js';
import { batchSync, type OpFailure } from '../kernel/batch.js';
import { isExists, isNotFound, KernelError } from '../kernel/errors.js';
import { Q, querySync, localLinkNames } from '../kernel/iproute.js';
import { deleteLinkSync, kernelOps } from '../kernel/kernel.js';
import { nftApplySync } from '../kernel/nft.js';
import type { Op } from '../kernel/ops.js';
import { ensureSysctlSync } from '../kernel/sysctl.js';
import type { LinkWithAddrs, RouteEntry } from '../kernel/types.js';
import { trace } from './ip.js';
import {
  attachmentHash,
  hostVethName,
  HOST_VETH_RE,
  IpamStore,
  type Allocation,
  type AllocationRecord,
  type AttachmentKey,
} from './ipam.js';
import { warn } from './log.js';

export interface ResultInterface {
  name: string;
  mac?: string;
  sandbox?: string;
  mtu?: number;
}
export interface ResultIp {
  address: string;
  gateway?: string;
  interface?: number;
  version?: string;
}
export interface ResultRoute {
  dst: string;
  gw?: string;
}
export interface CniResult {
  cniVersion: string;
  interfaces: ResultInterface[];
  ips: ResultIp[];
  routes: ResultRoute[];
  dns: Dns;
}

/** Test hook: WEFT_CNI_FAULT=<point> kills the plugin at that point, as a crash would. */
function faultPoint(point: string): void {
  if (process.env.WEFT_CNI_FAULT === point) process.kill(process.pid, 'SIGKILL');
}

function store(conf: NetConf): IpamStore {
  const t = Number(process.env.WEFT_CNI_LOCK_TIMEOUT_MS);
  return new IpamStore(`${conf.dataDir}/${conf.name}`, {
    ...(Number.isFinite(t) && t > 0 && { lockTimeoutMs: t }),
    ...(conf.hostLocalDir !== undefined && { hostLocalDir: conf.hostLocalDir }),
  });
}

function errnoOf(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? String(e);
}

/** Reads the agent's subnet file; a missing file means "no lease yet": try again later (11). */
export function loadSubnetEnv(path: string): SubnetEnv {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new CniError(
      ERR.TRY_AGAIN,
      `failed to load the node's subnet file ${path}: ${errnoOf(e)}`,
      'the node has no lease yet: start the weft agent on this node (it writes this file) and retry',
    );
  }
  let env: SubnetEnv;
  try {
    env = parseSubnetEnv(text, path);
  } catch (e) {
    throw new CniError(
      ERR.BAD_SUBNET_FILE,
      `invalid subnet file: ${describeError(e)}`,
      'the weft agent rewrites it when it (re)starts',
    );
  }
  if (
    env.subnet.len > 30 ||
    !env.subnet.contains(env.gateway) ||
    env.gateway === env.subnet.ip ||
    env.gateway === env.subnet.last
  ) {
    throw new CniError(
      ERR.BAD_SUBNET_FILE,
      `invalid subnet file ${path}: FLANNEL_SUBNET ${formatIPv4(env.gateway)}/${env.subnet.len} has no room for pods`,
    );
  }
  return env;
}

const NSFS_MAGIC = 0x6e736673;

/** The pod's namespace must be an nsfs file (a bind mount under /run/netns or /proc/PID/ns/net). */
function checkNetns(path: string): void {
  if (!path.startsWith('/') || /\s/.test(path)) {
    throw new CniError(
      ERR.INVALID_ENV,
      `CNI_NETNS=${JSON.stringify(path)} is not an absolute path to a network namespace`,
    );
  }
  let type: number;
  try {
    type = statfsSync(path).type;
  } catch (e) {
    throw new CniError(
      ERR.INVALID_ENV,
      `CNI_NETNS=${path}: cannot open the network namespace: ${errnoOf(e)}`,
    );
  }
  if (type !== NSFS_MAGIC) {
    throw new CniError(
      ERR.INVALID_ENV,
      `CNI_NETNS=${path} is not a network namespace`,
      'expected /run/netns/NAME (a namespace bind mount) or /proc/PID/ns/net',
    );
  }
}

function mac(prefix: number, ip: IPv4): string {
  return [prefix, 0x58, ip >>> 24, (ip >>> 16) & 255, (ip >>> 8) & 255, ip & 255]
    .map((b) => b.toString(16).padStart(2, '0'))
    .join(':');
}

interface BridgeState {
  mac: string;
  /** Addresses removed because the node's subnet changed. */
  replaced: string[];
}

function queryBridge(name: string): LinkWithAddrs | undefined {
  const link = querySync(Q.linkAddrs(name));
  trace('bridge query');
  return link;
}

/** Carries out Ops in the node's namespace (or `netns`), stopping at the first failure. */
function kernel(ops: Op[], o: { netns?: string; keepGoing?: boolean } = {}): OpFailure[] {
  return kernelOps().executeSync(ops, { netns: o.netns, stopOnFailure: !o.keepGoing });
}

const answers = (fs: readonly OpFailure[]) => fs.map((f) => f.message).join('; ');

/**
 * Makes the bridge exist, be up, and carry exactly the gateway address of the node's current subnet.
 * When the lease changed (subnet.env differs from the bridge's address), the old address is replaced
 * instead of failing the way Flannel's "cni0 already has an IP address different from …" does.
 */
function ensureBridge(name: string, env: SubnetEnv, mtu: number, stateFile: string): BridgeState {
  // Fast path: the last ADD recorded the bridge as configured for this very subnet, and it still exists
  // (checked without spawning anything). Any difference falls through to the full query.
  const want = `${name} ${formatIPv4(env.gateway)}/${env.subnet.len}`;
  try {
    const [state, mac] = readFileSync(stateFile, 'utf8').split('\n');
    if (state === want && mac && localLinkNames().has(name)) return { mac, replaced: [] };
  } catch {
    /* no state yet */
  }
  const st = configureBridge(name, env, mtu);
  try {
    const tmp = `${stateFile}.${process.pid}.${threadId}`;
    writeFileSync(tmp, `${want}\n${st.mac}\n`);
    renameSync(tmp, stateFile);
  } catch {
    /* only an optimisation */
  }
  return st;
}

function configureBridge(name: string, env: SubnetEnv, mtu: number): BridgeState {
  let link = queryBridge(name);
  if (!link) {
    const [f] = kernel([{ op: 'link-add-bridge', name, address: mac(0x0a, env.gateway), mtu }]);
    if (f && !isExists(f)) throw new CniError(ERR.KERNEL, `cannot create bridge ${name}: ${f.message}`);
    link = queryBridge(name);
    if (!link) throw new CniError(ERR.KERNEL, `bridge ${name} vanished right after it was created`);
  }
  const kind = link.linkinfo?.info_kind;
  if (kind !== 'bridge') {
    throw new CniError(
      ERR.INVALID_CONFIG,
      `bridge: ${name} exists and is ${kind ? `a ${kind} device` : 'not a bridge'}`,
      'choose another "bridge" name',
    );
  }
  const gw = formatIPv4(env.gateway);
  const len = env.subnet.len;
  const v4 = link.addr_info.filter((a) => a.family === 'inet');
  const others = v4
    .filter((a) => !(a.local === gw && a.prefixlen === len))
    .map((a) => `${a.local}/${a.prefixlen}`);
  const ops: Op[] = others.map((cidr) => ({ op: 'addr-del', dev: name, cidr }));
  if (others.length === v4.length)
    ops.push({ op: 'addr-replace', dev: name, cidr: `${gw}/${len}`, broadcast: true });
  if (!link.flags.includes('UP')) ops.push({ op: 'link-set', name, up: true });
  if (ops.length > 0) {
    // Concurrent ADDs may race on these changes: tolerate failures, then verify the outcome.
    const fs = kernel(ops, { keepGoing: true });
    if (fs.length > 0) {
      const after = queryBridge(name);
      const ok =
        after !== undefined &&
        after.flags.includes('UP') &&
        after.addr_info
          .filter((a) => a.family === 'inet')
          .every((a) => a.local === gw && a.prefixlen === len) &&
        after.addr_info.some((a) => a.family === 'inet');
      if (!ok)
        throw new CniError(ERR.KERNEL, `cannot configure bridge ${name} with ${gw}/${len}: ${answers(fs)}`);
    }
    if (others.length > 0) {
      warn(
        `bridge ${name} had ${others.join(', ')}, but the node's subnet is now ${env.subnet.toString()} ` +
          `(${'subnet file changed'}): re-addressed it to ${gw}/${len}`,
      );
    }
  }
  return { mac: link.address, replaced: others };
}

/** The address the runtime asked for, if any (runtimeConfig.ips / args.cni.ips, else CNI_ARGS IP). */
function requestedAddress(conf: NetConf, cniArgs: Map<string, string>, subnet: Cidr): IPv4 | undefined {
  const list = conf.requestedIps ?? (cniArgs.has('IP') ? cniArgs.get('IP')!.split(',') : undefined);
  if (!list) return undefined;
  for (const entry of list) {
    const [addr, plen] = entry.trim().split('/');
    if (addr === undefined || addr.includes(':')) continue; // IPv6: not served by this plugin
    const ip = parseIPv4(addr);
    if (ip === undefined)
      throw new CniError(
        ERR.INVALID_CONFIG,
        `requested address ${JSON.stringify(entry)} is not an IPv4 address`,
      );
    if (plen !== undefined && Number(plen) !== subnet.len) {
      throw new CniError(
        ERR.NO_ADDRESS,
        `requested address ${entry} does not match the node's subnet ${subnet.toString()}`,
      );
    }
    return ip;
  }
  return undefined;
}

/** CNI_ARGS MAC (used only when neither runtimeConfig.mac nor args.cni.mac is given). */
function argsMac(cniArgs: Map<string, string>): string | undefined {
  const m = cniArgs.get('MAC');
  if (m === undefined) return undefined;
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(m) || (parseInt(m.slice(0, 2), 16) & 1) === 1) {
    throw new CniError(ERR.INVALID_ENV, `CNI_ARGS: MAC=${m} is not a unicast MAC address`);
  }
  return m.toLowerCase();
}

/** Drops allocations of an older subnet whose host veth is gone (their pods no longer exist). */
function dropStale(st: IpamStore, all: Allocation[], subnet: Cidr): number {
  const links = localLinkNames();
  let n = 0;
  for (const a of all) {
    if (subnet.contains(a.ip)) continue;
    const veth = st.read(a)?.hostVeth ?? hostVethName(a.hash);
    if (!links.has(veth)) {
      st.remove(a);
      n++;
    }
  }
  return n;
}

function ipMasqTable(name: string): string {
  return `weft_cni_${name.replace(/[^a-zA-Z0-9_]/g, '_')}`;
}

/** Masquerades traffic from the node's subnet leaving the cluster network, in one weft-owned table. */
function ensureIpMasq(conf: NetConf, env: SubnetEnv): void {
  const t = ipMasqTable(conf.name);
  const rules = [
    `add table ip ${t}`,
    `delete table ip ${t}`,
    `table ip ${t} {`,
    `  chain postrouting {`,
    `    type nat hook postrouting priority srcnat; policy accept;`,
    `    ip saddr ${env.subnet.toString()} ip daddr != ${env.network.toString()} ip daddr != 224.0.0.0/4 masquerade comment "weft-cni ${conf.name} ipMasq"`,
    `  }`,
    `}`,
  ].join('\n');
  try {
    nftApplySync(rules + '\n');
  } catch (e) {
    const why = e instanceof KernelError ? e.reason : describeError(e);
    throw new CniError(ERR.KERNEL, `cannot install the ipMasq rule (table ip ${t}): ${why}`);
  }
}

function deleteHostVeth(name: string): void {
  if (!localLinkNames().has(name)) return;
  const f = deleteLinkSync(name);
  if (f && !isNotFound(f)) throw new CniError(ERR.KERNEL, `cannot delete ${name}: ${f.message}`);
}

function podIfaceExists(netns: string, ifname: string): boolean {
  try {
    return querySync(Q.link(ifname), netns) !== undefined;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------- ADD

export function cmdAdd(env: CniEnv, conf: NetConf, cniArgs: Map<string, string>): CniResult {
  const netns = env.netns!;
  const key: AttachmentKey = { containerId: env.containerId!, ifname: env.ifname! };
  checkNetns(netns);
  const senv = loadSubnetEnv(conf.subnetFile);
  const mtu = conf.mtu ?? senv.mtu;
  const hash = attachmentHash(key);
  const veth = hostVethName(hash);
  const gw = formatIPv4(senv.gateway);
  const len = senv.subnet.len;

  const stDir = `${conf.dataDir}/${conf.name}`;
  try {
    mkdirSync(stDir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new CniError(ERR.IO, `cannot create the allocation store ${stDir}: ${errnoOf(e)}`);
  }
  const bridge = ensureBridge(conf.bridge, senv, mtu, `${stDir}/bridge-state`);
  const requested = requestedAddress(conf, cniArgs, senv.subnet);
  const st = store(conf);
  let fresh = false;
  const pod = cniArgs.has('K8S_POD_NAME')
    ? `${cniArgs.get('K8S_POD_NAMESPACE') ?? ''}/${cniArgs.get('K8S_POD_NAME')}`
    : undefined;
  const alloc = st.withLock(() => {
    const all = st.list();
    if (bridge.replaced.length > 0) {
      const n = dropStale(st, all, senv.subnet);
      if (n > 0) warn(`dropped ${n} allocation(s) of the previous subnet whose pods no longer exist`);
    }
    const mine = st.findByHash(hash, all);
    // A repeated ADD of the same attachment (e.g. after a crash) keeps its address.
    const reuse = mine.find(
      (a) => senv.subnet.contains(a.ip) && (requested === undefined || a.ip === requested),
    );
    for (const a of mine) if (a !== reuse) st.remove(a);
    if (reuse) return reuse;
    const used = new Set(all.filter((a) => a.hash !== hash).map((a) => a.ip));
    const ip = st.pick(senv.subnet, senv.gateway, used, requested, key);
    fresh = true;
    const rec: AllocationRecord = {
      containerId: key.containerId,
      ifname: key.ifname,
      address: `${formatIPv4(ip)}/${len}`,
      hostVeth: veth,
      netns,
      ...(pod && { pod }),
      created: new Date().toISOString(),
    };
    return st.write(ip, hash, rec);
  });
  trace('allocated');
  faultPoint('after-alloc');

  const ip = formatIPv4(alloc.ip);
  const podMac = conf.requestedMac ?? argsMac(cniArgs) ?? mac(0x0a, alloc.ip);
  const hostMac = mac(0x0e, alloc.ip);
  let hostCreated = false;
  try {
    const hostOps: Op[] = [
      {
        op: 'link-add-veth',
        name: veth,
        mtu,
        address: hostMac,
        peer: { name: key.ifname, mtu, address: podMac, netns },
      },
      { op: 'link-set', name: veth, master: conf.bridge },
      ...(conf.hairpinMode ? [{ op: 'link-set', name: veth, hairpin: true } as const] : []),
      { op: 'link-set', name: veth, up: true },
    ];
    let fs = kernel(hostOps);
    if (fs[0]?.index === 0 && isExists(fs[0])) {
      if (podIfaceExists(netns, key.ifname)) {
        throw new CniError(
          ERR.IFACE_EXISTS,
          `interface ${key.ifname} already exists in ${netns}`,
          'the runtime must DEL the attachment before adding it again',
        );
      }
      // A host end left by an earlier, interrupted ADD of this attachment: replace it.
      fs = kernel([{ op: 'link-del', name: veth }, ...hostOps]);
    }
    trace('host ops');
    if (fs.length > 0) {
      hostCreated = true;
      throw new CniError(ERR.KERNEL, `"${fs[0]!.command}" failed: ${fs[0]!.message}`);
    }
    hostCreated = true;
    faultPoint('after-host');

    const network = senv.network;
    const routes: ResultRoute[] = [];
    if (network.len > 0 && !network.equals(senv.subnet)) routes.push({ dst: network.toString(), gw });
    if (conf.isDefaultGateway) routes.push({ dst: '0.0.0.0/0', gw });
    const [pf] = kernel(
      [
        { op: 'addr-add', dev: key.ifname, cidr: `${ip}/${len}`, broadcast: true },
        { op: 'link-set', name: key.ifname, up: true },
        ...routes.map((rt): Op => ({
          op: 'route-append',
          dst: rt.dst === '0.0.0.0/0' ? 'default' : rt.dst,
          via: rt.gw,
          dev: key.ifname,
        })),
      ],
      { netns },
    );
    trace('pod ops');
    if (pf)
      throw new CniError(
        ERR.KERNEL,
        `configuring the pod interface: "${pf.command}" in ${netns} failed: ${pf.message}`,
      );
    ensureSysctlSync('net.ipv4.ip_forward', '1');
    if (conf.ipMasq) ensureIpMasq(conf, senv);

    const ours: CniResult = {
      cniVersion: conf.cniVersion,
      interfaces: [
        { name: conf.bridge, mac: bridge.mac },
        { name: veth, mac: hostMac },
        { name: key.ifname, mac: podMac, sandbox: netns, mtu },
      ],
      ips: [{ address: `${ip}/${len}`, gateway: gw, interface: 2 }],
      routes,
      dns: conf.dns ?? {},
    };
    return mergePrevResult(conf.prevResult, ours);
  } catch (e) {
    // Undo this ADD's part; the record goes only if this ADD created it.
    if (hostCreated) {
      try {
        deleteHostVeth(veth);
      } catch {
        /* DEL or GC will finish the job from the record */
      }
    }
    if (fresh) {
      try {
        st.withLock(() => st.remove(alloc));
      } catch {
        /* likewise */
      }
    }
    throw e;
  }
}

/** When weft-cni is not first in a chain, its interfaces and addresses are appended to prevResult's. */
function mergePrevResult(prev: Record<string, unknown> | undefined, ours: CniResult): CniResult {
  if (!prev) return ours;
  const pIfaces = Array.isArray(prev.interfaces) ? (prev.interfaces as ResultInterface[]) : [];
  const pIps = Array.isArray(prev.ips) ? (prev.ips as ResultIp[]) : [];
  const pRoutes = Array.isArray(prev.routes) ? (prev.routes as ResultRoute[]) : [];
  const off = pIfaces.length;
  return {
    cniVersion: ours.cniVersion,
    interfaces: [...pIfaces, ...ours.interfaces],
    ips: [
      ...pIps,
      ...ours.ips.map((i) => ({ ...i, ...(i.interface !== undefined && { interface: i.interface + off }) })),
    ],
    routes: [...pRoutes, ...ours.routes],
    dns:
      typeof prev.dns === 'object' && prev.dns !== null && Object.keys(prev.dns).length > 0
        ? (prev.dns as Dns)
        : ours.dns,
  };
}

/** The result in the shape of the requested spec version. */
export function formatResult(r: CniResult, version: string): Record<string, unknown> {
  const v1 = compareVersions(version, '1.0.0') >= 0;
  const v11 = compareVersions(version, '1.1.0') >= 0;
  return {
    cniVersion: version,
    interfaces: r.interfaces.map((i) => {
      const o: ResultInterface = { name: i.name };
      if (i.mac) o.mac = i.mac;
      if (i.sandbox) o.sandbox = i.sandbox;
      if (v11 && i.mtu !== undefined) o.mtu = i.mtu;
      return o;
    }),
    // 0.3.x and 0.4.0 carry the IP version per address; 1.0.0 removed it.
    ips: r.ips.map((i) => {
      const o: ResultIp = v1
        ? { address: i.address }
        : { version: i.address.includes(':') ? '6' : '4', address: i.address };
      if (i.gateway) o.gateway = i.gateway;
      if (i.interface !== undefined) o.interface = i.interface;
      return o;
    }),
    routes: r.routes,
    dns: r.dns,
  };
}

// ---------------------------------------------------------------------------------------------- DEL

/**
 * Best effort and idempotent: deletes the host end of the veth pair (which takes the pod end with it,
 * if the pod's namespace still exists) and releases the attachment's allocation. Needs neither the
 * subnet file nor the pod's namespace.
 */
export function cmdDel(env: CniEnv, conf: NetConf): void {
  const key: AttachmentKey = { containerId: env.containerId!, ifname: env.ifname! };
  const hash = attachmentHash(key);
  const st = store(conf);
  const mine = st.findByHash(hash);
  const veths = new Set([hostVethName(hash)]);
  for (const a of mine) {
    const v = st.read(a)?.hostVeth;
    if (v && HOST_VETH_RE.test(v)) veths.add(v);
  }
  trace('found');
  for (const v of veths) deleteHostVeth(v);
  trace('veth deleted');
  if (mine.length > 0) st.withLock(() => st.findByHash(hash).forEach((a) => st.remove(a)));
  // A pod Flannel's CNI attached (hostLocalDir): released as host-local's DEL would, and its veth
  // (the bridge plugin's, not named by weft) deleted from inside the pod's namespace.
  const foreign = st.releaseShared(key);
  if (foreign.length > 0 && mine.length === 0 && env.netns) deletePodIface(env.netns, key.ifname);
  trace('released');
}

/** Deletes the pod's end of a veth pair (which takes the host end with it); gone already is fine. */
function deletePodIface(netns: string, ifname: string): void {
  let f: OpFailure | undefined;
  try {
    [f] = kernel([{ op: 'link-del', name: ifname }], { netns });
  } catch {
    return; // the namespace is gone, and the pair with it
  }
  if (f && !isNotFound(f))
    throw new CniError(ERR.KERNEL, `cannot delete ${ifname} in ${netns}: ${f.message}`);
}

// -------------------------------------------------------------------------------------------- CHECK

function normDst(d: string): string {
  return d === 'default' ? '0.0.0.0/0' : d.includes('/') ? d : `${d}/32`;
}

export function cmdCheck(env: CniEnv, conf: NetConf): void {
  const netns = env.netns!;
  const key: AttachmentKey = { containerId: env.containerId!, ifname: env.ifname! };
  const prev = conf.prevResult;
  if (!prev)
    throw new CniError(
      ERR.INVALID_CONFIG,
      'CHECK needs prevResult (the result of the ADD) in the network configuration',
    );
  checkNetns(netns);
  const fail = (msg: string): never => {
    throw new CniError(ERR.CHECK_FAILED, `CHECK ${key.containerId}/${key.ifname}: ${msg}`);
  };
  const ifaces = Array.isArray(prev.interfaces) ? (prev.interfaces as ResultInterface[]) : [];
  const podIdx = ifaces.findIndex((i) => i.name === key.ifname && typeof i.sandbox === 'string');
  if (podIdx < 0) fail(`prevResult lists no interface ${key.ifname} with a sandbox`);

  // IP reservation
  const hash = attachmentHash(key);
  const st = store(conf);
  const mine = st.findByHash(hash);
  if (mine.length === 0) fail(`no address is reserved for this attachment in ${st.dir}`);

  // Pod side: interface, addresses, routes.
  const r = batchSync([`addr show dev ${key.ifname}`, 'route show'], { netns, json: true });
  const docs = r.stdout
    .split('\n')
    .filter((l) => l.trim().startsWith('['))
    .map((l) => JSON.parse(l) as unknown[]);
  if (r.failures.some((f) => f.line === 1) || docs.length < 2)
    fail(`interface ${key.ifname} does not exist in ${netns}`);
  const link = (docs[0] as LinkWithAddrs[])[0];
  const kroutes = docs[1] as RouteEntry[];
  if (!link) return fail(`interface ${key.ifname} does not exist in ${netns}`);
  const want = ifaces[podIdx]!;
  if (want.mac && link.address && want.mac.toLowerCase() !== link.address.toLowerCase()) {
    fail(`interface ${key.ifname} has MAC ${link.address}, prevResult says ${want.mac}`);
  }
  if (want.mtu !== undefined && link.mtu !== want.mtu)
    fail(`interface ${key.ifname} has MTU ${link.mtu}, prevResult says ${want.mtu}`);
  if (!link.flags.includes('UP')) fail(`interface ${key.ifname} is down`);
  const ips = Array.isArray(prev.ips) ? (prev.ips as ResultIp[]) : [];
  for (const ipc of ips) {
    if (ipc.interface !== undefined && ipc.interface !== podIdx) continue;
    if (ipc.address.includes(':')) continue;
    const [a, p] = ipc.address.split('/');
    if (!link.addr_info.some((x) => x.family === 'inet' && x.local === a && x.prefixlen === Number(p))) {
      fail(`address ${ipc.address} is missing on ${key.ifname}`);
    }
    if (!mine.some((m) => formatIPv4(m.ip) === a))
      fail(`address ${ipc.address} is not reserved for this attachment`);
  }
  const routes = Array.isArray(prev.routes) ? (prev.routes as ResultRoute[]) : [];
  for (const rt of routes) {
    if (rt.dst.includes(':')) continue;
    const found = kroutes.some(
      (k) => normDst(k.dst) === normDst(rt.dst) && (rt.gw === undefined || k.gateway === rt.gw),
    );
    if (!found) fail(`route to ${rt.dst}${rt.gw ? ` via ${rt.gw}` : ''} is missing in ${netns}`);
  }

  // Node side: the host end on the bridge, and the bridge with the gateway address.
  const veth = querySync(Q.link(hostVethName(hash)));
  if (!veth) fail(`host interface ${hostVethName(hash)} does not exist`);
  if (veth!.master !== conf.bridge)
    fail(`host interface ${hostVethName(hash)} is not attached to ${conf.bridge}`);
  const br = queryBridge(conf.bridge);
  if (!br) fail(`bridge ${conf.bridge} does not exist`);
  const gws = ips.map((i) => i.gateway).filter((g): g is string => typeof g === 'string' && !g.includes(':'));
  for (const g of gws) {
    if (!br!.addr_info.some((x) => x.family === 'inet' && x.local === g))
      fail(`bridge ${conf.bridge} does not have the gateway address ${g}`);
  }
}

// ------------------------------------------------------------------------------------------- STATUS

export function cmdStatus(conf: NetConf): void {
  let senv: SubnetEnv;
  try {
    senv = loadSubnetEnv(conf.subnetFile);
  } catch (e) {
    const ce = e as CniError;
    throw new CniError(ERR.NOT_AVAILABLE, ce.message, ce.details);
  }
  const used = store(conf)
    .list()
    .filter((a) => senv.subnet.contains(a.ip)).length;
  const capacity = senv.subnet.size - 3; // network, gateway, broadcast
  if (used >= capacity) {
    throw new CniError(
      ERR.NOT_AVAILABLE,
      `no free address left in the node's subnet ${senv.subnet.toString()} (${used} allocated)`,
    );
  }
}

// ----------------------------------------------------------------------------------------------- GC

/**
 * Releases every allocation whose attachment is not in cni.dev/valid-attachments and deletes its host
 * veth; also deletes weft host veths on the bridge that belong to no valid attachment (left by a DEL
 * that failed half-way). Continues past errors and reports them all at the end.
 */
export function cmdGc(conf: NetConf): void {
  const valid = new Set((conf.validAttachments ?? []).map((k) => attachmentHash(k)));
  const st = store(conf);
  const errors: string[] = [];
  const stale: { a: Allocation; veth: string }[] = [];
  for (const a of st.list()) {
    if (valid.has(a.hash)) continue;
    const rec = st.read(a);
    stale.push({
      a,
      veth: rec?.hostVeth && HOST_VETH_RE.test(rec.hostVeth) ? rec.hostVeth : hostVethName(a.hash),
    });
  }
  const validVeths = new Set([...valid].map((h) => hostVethName(h)));
  let onBridge: { ifname: string }[] = [];
  try {
    onBridge = querySync(Q.linksOf(conf.bridge));
  } catch (e) {
    errors.push(describeError(e));
  }
  const toDelete = new Set(stale.map((s) => s.veth));
  for (const l of onBridge)
    if (HOST_VETH_RE.test(l.ifname) && !validVeths.has(l.ifname)) toDelete.add(l.ifname);
  const present = localLinkNames();
  const failedVeths = new Set<string>();
  for (const v of [...toDelete].filter((x) => present.has(x))) {
    const f = deleteLinkSync(v);
    if (f && localLinkNames().has(v)) {
      failedVeths.add(v);
      errors.push(`cannot delete ${v}: ${f.message}`);
    }
  }
  if (stale.length > 0) {
    try {
      st.withLock(() => {
        for (const s of stale) {
          if (failedVeths.has(s.veth)) continue; // keep the record so that a later GC retries
          try {
            st.remove(s.a);
          } catch (e) {
            errors.push((e as Error).message);
          }
        }
      });
    } catch (e) {
      errors.push(describeError(e));
    }
  }
  if (errors.length > 0)
    throw new CniError(ERR.GC_INCOMPLETE, `GC left ${errors.length} stale resource(s)`, errors.join('; '));
}
