import { devicesIn, routeGet, type DeviceFacts } from '../kernel/observe.js';
import type { LabState } from '../lab/lab.js';
import { listNetns } from '../lab/netns.js';
import { readServices, type ServiceState } from '../lab/services.js';
import { WeftError } from '../util/errors.js';
import { Cidr, parseIPv4 } from '../util/ipv4.js';
import type { Proto, Role } from './types.js';

/**
 * Where a lab trace starts and ends, and which namespaces it watches: every namespace of the lab
 * (pods, nodes, switch, router, external host) and, on a Neutron underlay, the hypervisors, the
 * router namespace and the fabric.
 */

export interface WatchedNs {
  name: string;
  host: string;
  role: Role;
  /** nftables tracing here: namespaces whose netfilter rules can decide a packet's fate. */
  nft: boolean;
  devices: DeviceFacts[];
  cookie?: string;
}

export interface Endpoint {
  name: string;
  netns: string;
  ip: string;
}

export interface Destination {
  name: string;
  ip: string;
  port?: number;
  service?: ServiceState;
}

export interface ProbePlan {
  from: Endpoint;
  to: Destination;
  proto: Proto;
  port?: number;
}

const NEUTRON_HOSTS = /^nhost\d*$|^nnet$/;

/**
 * The namespaces a probe can cross: every node, the underlay and, of the pods and the external
 * host, only those the probe involves (each watched device costs the kernel an RCU grace period to
 * attach and another to detach).
 */
export async function labNamespaces(state: LabState, plan?: ProbePlan): Promise<WatchedNs[]> {
  const involved = new Set<string>();
  if (plan) {
    involved.add(plan.from.ip).add(plan.to.ip);
    for (const p of plan.to.service?.endpoints ?? [])
      involved.add(state.pods.find((x) => x.name === p)?.ip ?? '');
  }
  const wanted = (ip: string) => !plan || involved.has(ip);
  const all = await listNetns();
  const prefix = `wl-${state.name}-`;
  const out: Omit<WatchedNs, 'devices'>[] = [];
  for (const ns of all) {
    if (ns.startsWith(prefix)) {
      const pod = state.pods.find((p) => p.netns === ns);
      const node = state.nodes.find((n) => n.netns === ns);
      if (pod) {
        if (wanted(pod.ip)) out.push({ name: ns, host: pod.node, role: 'pod', nft: false });
      } else if (node) out.push({ name: ns, host: node.name, role: 'node', nft: true });
      else if (ns === state.external.netns) {
        if (wanted(state.external.ip)) out.push({ name: ns, host: 'external', role: 'external', nft: false });
      } else if (ns === state.switchNetns)
        out.push({ name: ns, host: 'switch', role: 'underlay', nft: false });
      else if (ns === state.gateway.netns)
        out.push({ name: ns, host: 'router', role: 'underlay', nft: false });
      else if (ns === state.etcd.netns)
        continue; // the control plane is never on a probe's path
      else out.push({ name: ns, host: ns.slice(prefix.length), role: 'underlay', nft: false });
    } else if (state.neutron) {
      if (NEUTRON_HOSTS.test(ns)) out.push({ name: ns, host: ns, role: 'neutron', nft: true });
      else if (ns === `qrouter-${state.neutron.routerId}`)
        out.push({ name: ns, host: 'neutron router', role: 'neutron', nft: true });
      else if (ns === 'fabric') out.push({ name: ns, host: 'fabric', role: 'underlay', nft: false });
      else if (ns === 'extnet' && wanted(state.external.ip))
        out.push({ name: ns, host: 'external', role: 'external', nft: false });
    }
  }
  return Promise.all(out.map(async (w) => ({ ...w, devices: await devicesIn(w.name) })));
}

const listOf = (state: LabState) =>
  `pods: ${state.pods.map((p) => p.name).join(' ')}; nodes: ${state.nodes.map((n) => n.name).join(' ')}; also ext`;

export function resolveFrom(state: LabState, name: string): Endpoint {
  const pod = state.pods.find((p) => p.name === name);
  if (pod) return { name, netns: pod.netns, ip: pod.ip };
  const node = state.nodes.find((n) => n.name === name);
  if (node) return { name, netns: node.netns, ip: node.publicIP };
  if (name === 'ext' || name === 'external')
    return { name: 'ext', netns: state.external.netns, ip: state.external.ip };
  throw new WeftError(`lab ${state.name} has no pod or node "${name}" to trace from`, {
    hint: listOf(state),
  });
}

/** The lab's name for an address (a pod, a node, the external host), if it has one. */
export function nameOf(state: LabState, ip: string): string | undefined {
  return (
    state.pods.find((p) => p.ip === ip)?.name ??
    state.nodes.find((n) => n.publicIP === ip)?.name ??
    (state.external.ip === ip ? 'ext' : undefined)
  );
}

export async function resolveTo(state: LabState, target: string): Promise<Destination> {
  const pod = state.pods.find((p) => p.name === target);
  if (pod) return { name: target, ip: pod.ip };
  const node = state.nodes.find((n) => n.name === target);
  if (node) return { name: target, ip: node.publicIP };
  if (target === 'ext' || target === 'external') return { name: 'ext', ip: state.external.ip };
  const services = await readServices(state.name);
  const svc = services.find((s) => s.name === target || s.vip === target);
  if (svc) {
    if (svc.endpoints.length === 0)
      throw new WeftError(
        `service ${svc.name} (${svc.vip}) has no endpoints: kube-proxy's rules reject every connection to it`,
        {
          hint: `give it pods: weft lab service del ${svc.name}, then weft lab service add ${svc.name} --port ${svc.port} --to POD`,
        },
      );
    return { name: svc.name, ip: svc.vip, port: svc.port, service: svc };
  }
  const ip = parseIPv4(target);
  if (ip === undefined)
    throw new WeftError(`lab ${state.name} has no pod, node or service "${target}"`, {
      hint: `${listOf(state)}; services: ${services.map((s) => s.name).join(' ') || 'none'}`,
    });
  const network = Cidr.parse(state.spec.network);
  if (network?.contains(ip) && !state.pods.some((p) => p.ip === target)) {
    const { readSubnetEnv } = await import('../config/subnet-env.js');
    const { join } = await import('node:path');
    const subnets = await Promise.all(
      state.nodes.map((n) =>
        readSubnetEnv(join(n.dir, 'subnet.env')).then(
          (e) => e.subnet,
          () => undefined,
        ),
      ),
    );
    if (!subnets.some((s) => s?.contains(ip)))
      throw new WeftError(
        `${target} is unreachable: it is in the pod network ${state.spec.network} but in no node's subnet, so no pod can have it`,
        {
          hint: listOf(state),
        },
      );
  }
  return { name: nameOf(state, target) ?? target, ip: target };
}

export async function planProbe(
  state: LabState,
  fromName: string,
  toName: string,
  opts: { proto?: Proto; port?: number },
): Promise<ProbePlan> {
  const from = resolveFrom(state, fromName);
  const to = await resolveTo(state, toName);
  // a node's address on a service's NodePort: the service's endpoints are on the path too
  if (!to.service && opts.port !== undefined && state.nodes.some((n) => n.publicIP === to.ip)) {
    const svc = (await readServices(state.name)).find((s) => s.nodePort === opts.port);
    if (svc) to.service = svc;
  }
  const proto: Proto =
    opts.proto ?? (to.service ? to.service.proto : opts.port !== undefined ? 'tcp' : 'icmp');
  if (to.service && proto !== to.service.proto)
    throw new WeftError(`service ${to.service.name} is ${to.service.proto}, not ${proto}`, {
      hint: `--proto ${to.service.proto}`,
    });
  const port = opts.port ?? to.port;
  if (proto === 'icmp' && opts.port !== undefined)
    throw new WeftError('--port makes no sense with an ICMP probe', { hint: '--proto tcp or --proto udp' });
  if (proto !== 'icmp' && port === undefined)
    throw new WeftError(`a ${proto} probe needs a port`, { hint: '--port P' });
  if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65535))
    throw new WeftError(`--port must be between 1 and 65535, got ${String(port)}`);
  const route = await routeGet(from.netns, to.ip);
  if (route.error)
    throw new WeftError(`${to.ip} is unreachable from ${from.name}: ${route.error}`, {
      hint: `ip -n ${from.netns} route`,
    });
  return { from, to, proto, ...(proto !== 'icmp' && { port }) };
}
