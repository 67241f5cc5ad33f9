import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { nftDeleteTable, nftLoad } from '../kernel/observe.js';
import { ConfigError, WeftError } from '../util/errors.js';
import { formatIPv4, parseIPv4 } from '../util/ipv4.js';
import { labDir } from './journal.js';
import type { LabState } from './state.js';

/**
 * Kubernetes services in the lab, programmed on every node as kube-proxy's nftables mode does: a
 * table of its own (`ip weft-svc`, never the agent's `ip weft`), a dispatch map from VIP . protocol .
 * port to one chain per service, a random choice among the endpoints (numgen random), a DNAT chain
 * per endpoint, masquerade (mark 0x4000, which the agent's table honours) for hairpin traffic and
 * for traffic from outside the pod network, NodePorts through `fib daddr type local`, and a reject
 * for services without endpoints. The lab keeps its services in services.json beside state.json.
 */
export const SVC_TABLE = 'weft-svc';
export const SERVICE_CIDR = '10.96.0.0/12';
export const SERVICE_PROTOS = ['tcp', 'udp'] as const;
export type ServiceProto = (typeof SERVICE_PROTOS)[number];
const MASQ_MARK = '0x4000';

export interface ServiceState {
  name: string;
  vip: string;
  port: number;
  targetPort: number;
  proto: ServiceProto;
  nodePort?: number;
  /** Pod names, in the order given. */
  endpoints: string[];
}

export interface ServiceStatus {
  name: string;
  vip: string;
  port: number;
  proto: ServiceProto;
  endpoints: string[];
  nodePort?: number;
  targetPort: number;
}

const file = (lab: string) => join(labDir(lab), 'services.json');

export async function readServices(lab: string): Promise<ServiceState[]> {
  try {
    return (JSON.parse(await readFile(file(lab), 'utf8')) as { services: ServiceState[] }).services;
  } catch {
    return [];
  }
}

async function writeServices(lab: string, services: ServiceState[]): Promise<void> {
  await writeFile(file(lab), JSON.stringify({ services }, null, 2));
}

export const serviceStatus = (s: ServiceState): ServiceStatus => ({
  name: s.name,
  vip: s.vip,
  port: s.port,
  proto: s.proto,
  endpoints: s.endpoints,
  targetPort: s.targetPort,
  ...(s.nodePort !== undefined && { nodePort: s.nodePort }),
});

export interface ServiceRequest {
  name: string;
  port: number;
  to: string[];
  proto?: ServiceProto;
  targetPort?: number;
  nodePort?: number;
}

const portOf = (field: string, v: number, min = 1, max = 65535): number => {
  if (!Number.isInteger(v) || v < min || v > max)
    throw new ConfigError(field, `must be an integer between ${min} and ${max}, got ${String(v)}`);
  return v;
};

/** The lowest free ClusterIP from 10.96.0.10 on (10.96.0.1 is the API server's by custom). */
function allocateVip(taken: Set<string>): string {
  const base = parseIPv4('10.96.0.0')!;
  for (let i = 10; i < 1 << 20; i++) {
    const ip = formatIPv4((base + i) >>> 0);
    if (!taken.has(ip)) return ip;
  }
  throw new WeftError(`the service range ${SERVICE_CIDR} is full`);
}

export async function serviceAdd(state: LabState, req: ServiceRequest): Promise<ServiceState> {
  if (!/^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/.test(req.name))
    throw new ConfigError('name', `must be 1-32 lowercase letters, digits or dashes, got "${req.name}"`);
  const services = await readServices(state.name);
  if (services.some((s) => s.name === req.name))
    throw new WeftError(`lab ${state.name} already has a service "${req.name}"`, {
      hint: `weft lab service del --name ${state.name} ${req.name}`,
    });
  const proto = req.proto ?? 'tcp';
  if (!(SERVICE_PROTOS as readonly string[]).includes(proto))
    throw new ConfigError('--proto', `must be tcp or udp, got "${proto}"`);
  const unknown = req.to.filter((p) => !state.pods.some((x) => x.name === p));
  if (unknown.length > 0)
    throw new WeftError(`lab ${state.name} has no pod ${unknown.join(', ')}`, {
      hint: `pods: ${state.pods.map((p) => p.name).join(' ')}`,
    });
  const port = portOf('--port', req.port);
  const svc: ServiceState = {
    name: req.name,
    vip: allocateVip(new Set(services.map((s) => s.vip))),
    port,
    targetPort: portOf('--target-port', req.targetPort ?? port),
    proto,
    endpoints: [...new Set(req.to)],
  };
  if (req.nodePort !== undefined) {
    svc.nodePort = portOf('--node-port', req.nodePort, 30000, 32767);
    const clash = services.find((s) => s.nodePort === svc.nodePort);
    if (clash) throw new WeftError(`node port ${svc.nodePort} is taken by service ${clash.name}`);
  }
  const next = [...services, svc];
  await programServices(state, next);
  await writeServices(state.name, next);
  return svc;
}

export async function serviceDel(state: LabState, name: string): Promise<void> {
  const services = await readServices(state.name);
  if (!services.some((s) => s.name === name))
    throw new WeftError(`lab ${state.name} has no service "${name}"`, {
      hint: 'weft lab service list',
    });
  const next = services.filter((s) => s.name !== name);
  await programServices(state, next);
  await writeServices(state.name, next);
}

/** Replaces the service table on every node, atomically per node (or removes it when none are left). */
export async function programServices(state: LabState, services: ServiceState[]): Promise<void> {
  const podIp = new Map(state.pods.map((p) => [p.name, p.ip]));
  await Promise.all(
    state.nodes.map((n) =>
      services.length === 0
        ? nftDeleteTable(n.netns, 'ip', SVC_TABLE)
        : nftLoad(n.netns, serviceRuleset(services, podIp, state.spec.network)),
    ),
  );
}

const chainId = (s: ServiceState) => `${s.name}-${s.proto}-${s.port}`;
const endpointChain = (s: ServiceState, ip: string) =>
  `endpoint-${s.name}-${ip.replace(/\./g, '-')}-${s.targetPort}`;

/** kube-proxy's nftables ruleset (pkg/proxy/nftables), reduced to what the lab needs. */
export function serviceRuleset(
  services: ServiceState[],
  podIp: Map<string, string>,
  clusterCidr: string,
): string {
  const dispatch: string[] = [];
  const nodePorts: string[] = [];
  const noEndpoints: string[] = [];
  const chains: string[] = [];
  for (const s of services) {
    const id = chainId(s);
    const eps = s.endpoints.map((p) => podIp.get(p)).filter((ip): ip is string => !!ip);
    if (eps.length === 0) {
      noEndpoints.push(`${s.vip} . ${s.proto} . ${s.port} : goto reject-chain`);
      continue;
    }
    dispatch.push(`${s.vip} . ${s.proto} . ${s.port} : goto service-${id}`);
    const pick =
      eps.length === 1
        ? `goto ${endpointChain(s, eps[0]!)}`
        : `numgen random mod ${eps.length} vmap { ${eps.map((ip, i) => `${i} : goto ${endpointChain(s, ip)}`).join(', ')} }`;
    chains.push(
      `  chain service-${id} {`,
      // Traffic to a ClusterIP from outside the pod network is masqueraded (kube-proxy's masqueradeAll=false).
      `    ip daddr ${s.vip} ${s.proto} dport ${s.port} ip saddr != ${clusterCidr} jump mark-for-masquerade`,
      `    ${pick}`,
      '  }',
    );
    for (const ip of eps)
      chains.push(
        `  chain ${endpointChain(s, ip)} {`,
        // Hairpin: an endpoint reaching itself through the VIP must see the reply come from the node.
        `    ip saddr ${ip} jump mark-for-masquerade`,
        `    meta l4proto ${s.proto} dnat to ${ip}:${s.targetPort}`,
        '  }',
      );
    if (s.nodePort !== undefined) {
      nodePorts.push(`${s.proto} . ${s.nodePort} : goto external-${id}`);
      chains.push(
        `  chain external-${id} {`,
        '    jump mark-for-masquerade',
        `    goto service-${id}`,
        '  }',
      );
    }
  }
  const elements = (xs: string[]) => (xs.length ? [`    elements = { ${xs.join(', ')} }`] : []);
  return [
    `table ip ${SVC_TABLE}`,
    `delete table ip ${SVC_TABLE}`,
    `table ip ${SVC_TABLE} {`,
    '  comment "Kubernetes services of the weft lab, as kube-proxy (nftables mode) programs them"',
    '  set cluster-ips {',
    '    type ipv4_addr',
    ...elements(services.map((s) => s.vip)),
    '  }',
    '  map service-ips {',
    '    type ipv4_addr . inet_proto . inet_service : verdict',
    ...elements(dispatch),
    '  }',
    '  map service-nodeports {',
    '    type inet_proto . inet_service : verdict',
    ...elements(nodePorts),
    '  }',
    '  map no-endpoint-services {',
    '    type ipv4_addr . inet_proto . inet_service : verdict',
    ...elements(noEndpoints),
    '  }',
    '  chain filter-input {',
    '    type filter hook input priority -10; policy accept;',
    '    ct state new jump service-endpoints-check',
    '  }',
    '  chain filter-forward {',
    '    type filter hook forward priority -10; policy accept;',
    '    ct state new jump service-endpoints-check',
    '    ct state new jump cluster-ips-check',
    '  }',
    '  chain filter-output {',
    '    type filter hook output priority -10; policy accept;',
    '    ct state new jump service-endpoints-check',
    '    ct state new jump cluster-ips-check',
    '  }',
    '  chain service-endpoints-check {',
    '    ip daddr . meta l4proto . th dport vmap @no-endpoint-services',
    '  }',
    '  chain cluster-ips-check {',
    '    ip daddr @cluster-ips reject comment "no such port on this ClusterIP"',
    '  }',
    '  chain reject-chain {',
    '    reject comment "service has no endpoints"',
    '  }',
    '  chain nat-prerouting {',
    '    type nat hook prerouting priority dstnat; policy accept;',
    '    jump services',
    '  }',
    '  chain nat-output {',
    '    type nat hook output priority -100; policy accept;',
    '    jump services',
    '  }',
    '  chain nat-postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    '    jump masquerading',
    '  }',
    '  chain masquerading {',
    `    meta mark & ${MASQ_MARK} == 0 return`,
    `    meta mark set meta mark ^ ${MASQ_MARK}`,
    '    masquerade fully-random',
    '  }',
    '  chain mark-for-masquerade {',
    `    meta mark set meta mark | ${MASQ_MARK}`,
    '  }',
    '  chain services {',
    '    ip daddr . meta l4proto . th dport vmap @service-ips',
    '    fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports',
    '  }',
    ...chains,
    '}',
    '',
  ].join('\n');
}

/** A service by name or ClusterIP. */
export async function findService(lab: string, nameOrVip: string): Promise<ServiceState | undefined> {
  return (await readServices(lab)).find((s) => s.name === nameOrVip || s.vip === nameOrVip);
}
