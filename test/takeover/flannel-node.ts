/**
 * A lab node as flanneld and Flannel's CNI plugin leave it (issue 14), built with plain commands: there
 * is no flanneld binary here, so this does, step by step, what flanneld v0.28 does on start
 * (reference/flannel.md §1.1, §4.3, §4.4, §5) and what its CNI plugin delegates to (§3: the reference
 * bridge plugin on cni0 with host-local IPAM, from Debian's containernetworking-plugins):
 *   - VXLAN device flannel.1 (VNI 1, UDP 8472, nolearning, MTU underlay − 50, <subnet>.0/32, accept_ra 0),
 *     reused with its MAC when it exists with a compatible configuration (a restart, or a rollback);
 *   - its lease in etcd under a 24 h etcd lease, reused by public IP, in Flannel's JSON;
 *   - /run/flannel/subnet.env (here the node's lab directory), ip_forward;
 *   - iptables (iptables-nft) nat FLANNEL-POSTRTG and filter FLANNEL-FWD, exactly the golden listing;
 *   - per peer lease: permanent neighbour, FDB entry, then `route replace … onlink` (vxlan), or a route via
 *     the peer's public IP (host-gw).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { invokeCni } from '../../src/cni/invoke.js';
import { Journal, labDir } from '../../src/lab/journal.js';
import {
  nsName,
  startAgent,
  waitReady,
  writeState,
  type LabState,
  type NodeState,
  type PodState,
} from '../../src/lab/lab.js';
import { run } from '../../src/util/exec.js';
import { etcdctl, inNs } from '../helpers/lab.js';

export type FlannelBackend = 'vxlan' | 'host-gw';

const PREFIX = '/coreos.com/network/subnets/';
const BRIDGE = '/usr/lib/cni/bridge';

export interface StoredLease {
  key: string;
  subnet: string;
  value: Record<string, unknown>;
  modRevision: string;
}

/** The subnet leases in the lab's etcd. */
export async function listLeases(state: LabState): Promise<StoredLease[]> {
  const r = await etcdctl(state, ['get', '--prefix', PREFIX, '-w', 'json']);
  const doc = JSON.parse(r.stdout) as { kvs?: { key: string; value: string; mod_revision: number }[] };
  return (doc.kvs ?? []).map((kv) => {
    const key = Buffer.from(kv.key, 'base64').toString();
    return {
      key,
      subnet: key.slice(PREFIX.length).replace('-', '/'),
      value: JSON.parse(Buffer.from(kv.value, 'base64').toString()) as Record<string, unknown>,
      modRevision: String(kv.mod_revision),
    };
  });
}

async function sh(ns: string, script: string): Promise<string> {
  const r = await inNs(ns, ['sh', '-ec', script]);
  if (r.code !== 0) throw new Error(`in ${ns}: ${script.slice(0, 120)}…: ${r.stderr.trim()}`);
  return r.stdout;
}

const randomMac = () => {
  const b = randomBytes(6);
  b[0] = (b[0]! & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
};

const base = (subnet: string) => subnet.split('/')[0]!;
const gw = (subnet: string) => base(subnet).replace(/\.0$/, '.1');

interface VxlanInfo {
  ifname: string;
  address: string;
  linkinfo?: {
    info_kind?: string;
    info_data?: { id?: number; port?: number; local?: string; link?: string };
  };
}

/** flanneld's golden rule set (e2e/rules.go), for iptables-restore --noflush. */
function flannelRules(network: string, subnet: string, ipMasq: boolean): string {
  const c = (what: string) => `-m comment --comment "flanneld ${what}"`;
  const nat = ipMasq
    ? [
        '*nat',
        ':FLANNEL-POSTRTG - [0:0]',
        `-A POSTROUTING ${c('masq')} -j FLANNEL-POSTRTG`,
        `-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 ${c('masq')} -j RETURN`,
        `-A FLANNEL-POSTRTG -s ${subnet} -d ${network} ${c('masq')} -j RETURN`,
        `-A FLANNEL-POSTRTG -s ${network} -d ${subnet} ${c('masq')} -j RETURN`,
        `-A FLANNEL-POSTRTG ! -s ${network} -d ${subnet} ${c('masq')} -j RETURN`,
        `-A FLANNEL-POSTRTG -s ${network} ! -d 224.0.0.0/4 ${c('masq')} -j MASQUERADE --random-fully`,
        `-A FLANNEL-POSTRTG ! -s ${network} -d ${network} ${c('masq')} -j MASQUERADE --random-fully`,
        'COMMIT',
      ]
    : [];
  return [
    ...nat,
    '*filter',
    ':FLANNEL-FWD - [0:0]',
    `-A FORWARD ${c('forward')} -j FLANNEL-FWD`,
    `-A FLANNEL-FWD -s ${network} ${c('forward')} -j ACCEPT`,
    `-A FLANNEL-FWD -d ${network} ${c('forward')} -j ACCEPT`,
    'COMMIT',
    '',
  ].join('\n');
}

export interface FlannelNode {
  subnet: string;
  mac: string | undefined;
}

/**
 * flanneld's start on a node, as far as the data path goes (its peers programmed by
 * programFlannelPeers). Idempotent like a flanneld restart: the device, lease and rules are reused.
 */
export async function flanneldStart(
  state: LabState,
  node: NodeState,
  backend: FlannelBackend,
  opts: { ipMasq?: boolean } = {},
): Promise<FlannelNode> {
  const ns = node.netns;
  const network = state.spec.network;
  const ipMasq = opts.ipMasq ?? true;
  const mtu = state.spec.mtu - (backend === 'vxlan' ? 50 : 0);
  let mac: string | undefined;
  if (backend === 'vxlan') {
    const r = await inNs(ns, ['ip', '-j', '-d', 'link', 'show', 'dev', 'flannel.1']);
    const cur = r.code === 0 ? (JSON.parse(r.stdout) as VxlanInfo[])[0] : undefined;
    const d = cur?.linkinfo?.info_data;
    const compatible = d && d.id === 1 && d.port === 8472 && d.local === node.publicIP && d.link === 'eth0';
    if (cur && !compatible) await sh(ns, 'ip link del flannel.1');
    mac = compatible ? cur.address : randomMac();
    if (!compatible)
      await sh(
        ns,
        `ip link add flannel.1 address ${mac} mtu ${mtu} type vxlan id 1 local ${node.publicIP} dev eth0 dstport 8472 nolearning
         echo 0 > /proc/sys/net/ipv6/conf/flannel.1/accept_ra`,
      );
  }
  // AcquireLease: this node's lease by public IP, else the subnet file's, else a free one (kept away
  // from weft's random picks in .1–.100 so that a test never races an agent for a subnet).
  const leases = await listLeases(state);
  const env = await readFile(join(node.dir, 'subnet.env'), 'utf8').catch(() => '');
  const previous = /FLANNEL_SUBNET=(\S+)\.1\/(\d+)/.exec(env);
  let subnet =
    leases.find((l) => l.value.PublicIP === node.publicIP)?.subnet ??
    (previous && !leases.some((l) => l.subnet === `${previous[1]}.0/${previous[2]}`)
      ? `${previous[1]}.0/${previous[2]}`
      : undefined);
  for (let x = 200; !subnet && x < 255; x++)
    if (!leases.some((l) => l.subnet === `10.244.${x}.0/24`)) subnet = `10.244.${x}.0/24`;
  if (!subnet) throw new Error('no free subnet for a Flannel node');
  const attrs = {
    PublicIP: node.publicIP,
    PublicIPv6: null,
    BackendType: backend,
    ...(backend === 'vxlan' && { BackendData: { VNI: 1, VtepMAC: mac } }),
  };
  const grant = await etcdctl(state, ['lease', 'grant', '86400']);
  const id = /lease ([0-9a-f]+) granted/.exec(grant.stdout)?.[1];
  if (!id) throw new Error(`etcdctl lease grant: ${grant.stdout} ${grant.stderr}`);
  const put = await etcdctl(state, [
    'put',
    `--lease=${id}`,
    `${PREFIX}${subnet.replace('/', '-')}`,
    JSON.stringify(attrs),
  ]);
  if (put.code !== 0) throw new Error(`etcdctl put: ${put.stderr}`);
  if (backend === 'vxlan')
    await sh(
      ns,
      `ip addr replace ${base(subnet)}/32 dev flannel.1
       ip link set flannel.1 up`,
    );
  await mkdir(node.dir, { recursive: true });
  await writeFile(
    join(node.dir, 'subnet.env'),
    `FLANNEL_NETWORK=${network}\nFLANNEL_SUBNET=${gw(subnet)}/24\nFLANNEL_MTU=${mtu}\nFLANNEL_IPMASQ=${ipMasq}\n`,
  );
  await sh(ns, 'echo 1 > /proc/sys/net/ipv4/ip_forward');
  const saved = await sh(ns, 'iptables-nft-save');
  if (!saved.includes('FLANNEL-FWD')) {
    const r = await inNs(ns, ['iptables-nft-restore', '--noflush'], {
      input: flannelRules(network, subnet, ipMasq),
    });
    if (r.code !== 0) throw new Error(`iptables-restore: ${r.stderr}`);
  }
  return { subnet, mac };
}

/** flanneld's handling of the other leases: what its watch programs for each peer. */
export async function programFlannelPeers(
  state: LabState,
  node: NodeState,
  backend: FlannelBackend,
): Promise<void> {
  const lines: string[] = [];
  for (const l of await listLeases(state)) {
    if (l.value.PublicIP === node.publicIP) continue;
    const peer = String(l.value.PublicIP);
    if (backend === 'host-gw') {
      lines.push(`ip route replace ${l.subnet} via ${peer} dev eth0`);
      continue;
    }
    const vtep = (l.value.BackendData as { VtepMAC?: string } | undefined)?.VtepMAC;
    if (l.value.BackendType !== 'vxlan' || !vtep) continue; // flanneld ignores other backends' leases
    lines.push(
      `ip neigh replace ${base(l.subnet)} lladdr ${vtep} dev flannel.1 nud permanent`,
      `bridge fdb replace ${vtep} dev flannel.1 dst ${peer} self permanent`,
      `ip route replace ${l.subnet} via ${base(l.subnet)} dev flannel.1 onlink`,
    );
  }
  if (lines.length > 0) await sh(node.netns, lines.join('\n'));
}

/** Starts weft's agent on a node (e.g. with --take-over-flannel) and waits until it is ready. */
export async function startWeft(state: LabState, node: NodeState, extraArgs: string[] = []): Promise<void> {
  node.agentPid = await startAgent(state, node, new Journal(labDir(state.name)), extraArgs);
  await writeState(state);
  await waitReady(node);
}

/** The delegate Flannel's CNI plugin renders for the bridge plugin (flannel_linux_test.go's shape). */
export function flannelDelegate(
  state: LabState,
  node: NodeState,
  subnet: string,
  mtu: number,
): Record<string, unknown> {
  return {
    cniVersion: '0.3.1',
    name: 'cbr0',
    type: 'bridge',
    hairpinMode: true,
    isDefaultGateway: true,
    isGateway: true,
    ipMasq: false,
    mtu,
    ipam: {
      type: 'host-local',
      ranges: [[{ subnet }]],
      routes: [{ dst: state.spec.network }],
      dataDir: join(node.dir, 'host-local'),
    },
  };
}

/** host-local's allocation directory of Flannel's network on a node. */
export const hostLocalDir = (node: NodeState): string => join(node.dir, 'host-local', 'cbr0');

/**
 * A pod attached by `plugin` with `config`, as a runtime attaches it (its namespace is removed by lab
 * down with every wl-<lab>-* namespace).
 */
export async function attachPod(
  state: LabState,
  node: NodeState,
  name: string,
  plugin: string,
  config: Record<string, unknown>,
): Promise<PodState> {
  const pod: PodState = {
    name,
    node: node.name,
    netns: nsName(state.name, name),
    ip: '',
    containerId: `${state.name}-${name}`,
  };
  await run('ip', ['netns', 'add', pod.netns]);
  await inNs(pod.netns, ['ip', 'link', 'set', 'lo', 'up']);
  const res = await invokeCni({
    plugin,
    command: 'ADD',
    containerId: pod.containerId,
    netns: `/run/netns/${pod.netns}`,
    ifname: 'eth0',
    config,
    hostNetns: node.netns,
  });
  pod.ip = String((res.ips as { address: string }[])[0]!.address).split('/')[0]!;
  state.pods.push(pod);
  await writeState(state);
  return pod;
}

/**
 * A pod attached as Flannel's CNI plugin attaches it: the rendered delegate saved under the plugin's
 * dataDir (for its DEL), then the reference bridge plugin's ADD (which runs host-local).
 */
export async function attachFlannelPod(
  state: LabState,
  node: NodeState,
  name: string,
  subnet: string,
): Promise<PodState> {
  const env = await readFile(join(node.dir, 'subnet.env'), 'utf8');
  const delegate = flannelDelegate(state, node, subnet, Number(/FLANNEL_MTU=(\d+)/.exec(env)?.[1]));
  await mkdir(join(node.dir, 'flannel'), { recursive: true });
  await writeFile(join(node.dir, 'flannel', `${state.name}-${name}`), JSON.stringify(delegate));
  return attachPod(state, node, name, BRIDGE, delegate);
}

/** DEL of a pod through `plugin`, as a runtime runs it. */
export async function deletePod(
  node: NodeState,
  pod: PodState,
  plugin: string,
  config: Record<string, unknown>,
): Promise<void> {
  await invokeCni({
    plugin,
    command: 'DEL',
    containerId: pod.containerId,
    netns: `/run/netns/${pod.netns}`,
    ifname: 'eth0',
    config,
    hostNetns: node.netns,
  });
}

/** DEL of a pod Flannel's CNI attached, as Flannel's plugin runs it: the saved delegate, to bridge. */
export async function deleteFlannelPod(node: NodeState, pod: PodState): Promise<void> {
  const saved = await readFile(join(node.dir, 'flannel', pod.containerId), 'utf8');
  await deletePod(node, pod, BRIDGE, JSON.parse(saved) as Record<string, unknown>);
}

/** The node's devices, routes, neighbours, FDB and rules, for the before/after picture. */
export async function nodePicture(node: NodeState): Promise<string> {
  return sh(
    node.netns,
    `echo '# ip -d link (vxlan, bridge)'; ip -d -o link show | grep -E 'vxlan|bridge ' | sed -E 's/ +(promiscuity|numtxqueues).*//' || true
     echo '# ip addr (tunnel, bridge)'; ip -4 -o addr show | grep -Ev ' lo |eth0|veth' || true
     echo '# ip route'; ip route
     echo '# ip neigh (permanent)'; ip neigh show nud permanent
     echo '# bridge fdb (tunnel)'; bridge fdb show | grep ' dst ' || true
     echo '# iptables-nft-save (Flannel)'; iptables-nft-save | grep -E 'FLANNEL|^\\*' || true
     echo '# nft tables'; nft list tables`,
  );
}
