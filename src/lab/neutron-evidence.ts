import { ipJsonIn, type RouteEntry } from '../kernel/iproute.js';
import { NeutronClient } from '../openstack/neutron.js';
import type { Port } from '../openstack/types.js';
import { WeftError } from '../util/errors.js';
import { Cidr, parseIPv4 } from '../util/ipv4.js';
import { execIn } from './netns.js';
import { NEUTRON_URL, neutronNodePlan } from './neutron-underlay.js';
import type { LabState, NodeState } from './state.js';

/**
 * What Neutron itself says about a neutron lab, read from its API (and from the hypervisors'
 * anti-spoofing counters): the node ports with their port security and address pairs, the router's
 * routes, and why a pod-sourced packet a node sends is dropped. Read only: nothing here changes Neutron.
 */

const api = () => new NeutronClient({ endpoint: NEUTRON_URL });

export interface NodePortView {
  node: string;
  portId: string;
  fixedIp: string;
  portSecurity: boolean;
  /** allowed_address_pairs, as ip_address strings. */
  pairs: string[];
}

export interface NeutronView {
  ports: NodePortView[];
  routerId: string;
  routes: { destination: string; nexthop: string }[];
}

const portView = (node: string, p: Port): NodePortView => ({
  node,
  portId: p.id,
  fixedIp: p.fixed_ips[0]?.ip_address ?? '',
  portSecurity: p.port_security_enabled !== false,
  pairs: (p.allowed_address_pairs ?? []).map((x) => x.ip_address),
});

/** The lab's node ports and router as Neutron has them now. */
export async function neutronView(s: LabState): Promise<NeutronView> {
  const n = s.neutron!;
  const c = api();
  const ports = await Promise.all(
    s.nodes.map(async (node) => portView(node.name, await c.getPort(n.ports[node.name]!))),
  );
  const router = await c.getRouter(n.routerId);
  return {
    ports,
    routerId: n.routerId,
    routes: router.routes.map((r) => ({ destination: r.destination, nexthop: r.nexthop })),
  };
}

const covers = (pair: string, ip: string): boolean => {
  const c = Cidr.parse(pair.includes('/') ? pair : `${pair}/32`);
  const a = parseIPv4(ip);
  return c !== undefined && a !== undefined && c.contains(a);
};

/**
 * Why Neutron drops a packet with source `srcIp` that `node` sends, in words, when its port's
 * anti-spoofing does (port security on, no address pair covering the source); undefined otherwise.
 */
export async function neutronDropExplanation(
  s: LabState,
  node: NodeState,
  srcIp: string,
): Promise<string | undefined> {
  const id = s.neutron?.ports[node.name];
  if (!id) return undefined;
  const p = portView(node.name, await api().getPort(id));
  if (!p.portSecurity || p.pairs.some((x) => covers(x, srcIp)) || p.fixedIp === srcIp) return undefined;
  return `Neutron's port security drops it: port ${p.portId} of ${node.name} (${p.fixedIp}) has port_security_enabled and no allowed address pair covering ${srcIp} (pairs: ${p.pairs.join(', ') || 'none'})`;
}

/** The hypervisor namespace a lab node's port is bound to (the fixture's nhost1/nhost2). */
export function hypervisorOf(s: LabState, node: NodeState): string {
  const i = s.nodes.findIndex((n) => n.name === node.name);
  return neutronNodePlan(s.name, i < 0 ? 0 : i).hypervisor;
}

/**
 * Packets dropped so far by the anti-spoofing chain of a node's port: the linuxbridge agent's
 * iptables chain `neutron-linuxbri-s<port id prefix>` in the port's hypervisor. NaN when unreadable.
 */
export async function spoofDrops(s: LabState, node: NodeState): Promise<number> {
  const id = s.neutron?.ports[node.name];
  if (!id) return NaN;
  const r = await execIn(
    hypervisorOf(s, node),
    ['iptables', '-L', `neutron-linuxbri-s${id.slice(0, 10)}`, '-v', '-x', '-n'],
    { allowFailure: true },
  );
  const drop = r.stdout.split('\n').find((l) => /\bDROP\b/.test(l));
  return Number(drop?.trim().split(/\s+/)[0] ?? NaN);
}

const normCidr = (c: string): string => Cidr.parse(c.includes('/') ? c : `${c}/32`)?.toString() ?? c;
const sameSet = (a: string[], b: string[]) => a.length === b.length && a.every((x) => b.includes(x));

/**
 * Where Neutron's data plane still differs from its API for the lab's nodes: the sources each port's
 * anti-spoofing chain lets through (the linuxbridge agent's iptables in the port's hypervisor) against
 * the port's address pairs, and the pod-network routes in the router's namespace against the router's
 * routes. Neutron's agents apply an API change when they next poll, 0.3–1.2 s later (sometimes more).
 */
export async function neutronDataPlaneLag(s: LabState): Promise<string[]> {
  const v = await neutronView(s);
  const diffs: string[] = [];
  for (const node of s.nodes) {
    const p = v.ports.find((x) => x.node === node.name)!;
    if (!p.portSecurity) continue;
    const r = await execIn(
      hypervisorOf(s, node),
      ['iptables', '-S', `neutron-linuxbri-s${p.portId.slice(0, 10)}`],
      {
        allowFailure: true,
      },
    );
    if (r.code !== 0) {
      diffs.push(`${node.name}: no anti-spoofing chain for port ${p.portId} yet`);
      continue;
    }
    const allowed = [...r.stdout.matchAll(/ -s (\S+) /g)]
      .map((m) => normCidr(m[1]!))
      .filter((c) => c !== `${p.fixedIp}/32`);
    const want = p.pairs.map(normCidr);
    if (!sameSet([...new Set(allowed)], [...new Set(want)]))
      diffs.push(
        `${node.name}'s port lets ${allowed.join(', ') || 'no pod range'} through, its pairs say ${want.join(', ') || 'none'}`,
      );
  }
  const network = Cidr.parse(s.spec.network);
  const inPods = (dst: string) => {
    const c = Cidr.parse(dst);
    return !!c && !!network && network.containsCidr(c);
  };
  const routes = await ipJsonIn<RouteEntry>(`qrouter-${v.routerId}`, ['route', 'show']).catch(() => []);
  const have = routes
    .filter((r) => r.gateway && inPods(r.dst))
    .map((r) => `${normCidr(r.dst)} via ${r.gateway}`);
  const want = v.routes
    .filter((r) => inPods(r.destination))
    .map((r) => `${normCidr(r.destination)} via ${r.nexthop}`);
  if (!sameSet(have, want))
    diffs.push(
      `the router routes ${have.join(', ') || 'no pod subnet'}, its API says ${want.join(', ') || 'none'}`,
    );
  return diffs;
}

/** Waits until Neutron's data plane does what its API says for the lab (at most `timeoutMs`). */
export async function waitNeutronApplied(s: LabState, timeoutMs = 30_000): Promise<number> {
  const t0 = performance.now();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const diffs = await neutronDataPlaneLag(s);
    if (diffs.length === 0) return Math.round(performance.now() - t0) / 1000;
    if (Date.now() > deadline)
      throw new WeftError(
        `Neutron's data plane does not follow its API after ${timeoutMs / 1000} s: ${diffs.join('; ')}`,
        {
          hint: `see the agents' logs in ${s.neutron!.dir}/log`,
        },
      );
    await new Promise((r) => setTimeout(r, 300));
  }
}
