import { spawnIn } from '../kernel/exec.js';
import { open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NeutronClient } from '../openstack/neutron.js';
import { run } from '../util/exec.js';
import { WeftError } from '../util/errors.js';
import { listNetns, ipIn } from './netns.js';
import type { Journal } from './journal.js';
import type { LabSpec } from './spec.js';

/**
 * The `neutron` underlay: the cluster on real OpenStack Neutron (Debian's packages, started by the
 * project's fixture, scripts/neutron-fixture.sh): two hypervisors (linuxbridge agents in namespaces
 * nhost1/nhost2) joined by a VXLAN tenant fabric, one Neutron network with two subnets behind a router,
 * port security on, and an external network (172.24.4.0/24, the fixture's `extnet`) behind the
 * router's gateway. Nodes are "VMs": namespaces plugged into Neutron ports (device_owner weft:node)
 * spread over both hypervisors and both subnets — overlay on overlay, as in the talk. etcd runs on a VM
 * of its own. Agents reach the Neutron API through a socat bridge into their namespace (127.0.0.1:9696),
 * as a VM would reach its cloud's API endpoint.
 */
export const NEUTRON_URL = 'http://127.0.0.1:9696';
export const NEUTRON_CLOUD = 'weftlab';
const FIXTURE = fileURLToPath(new URL('../../../scripts/neutron-fixture.sh', import.meta.url));
const SUBNETS = [
  { cidr: '10.0.1.0/24', gateway: '10.0.1.1', prefix: '10.0.1' },
  { cidr: '10.0.2.0/24', gateway: '10.0.2.1', prefix: '10.0.2' },
];
export const NEUTRON_EXTERNAL_IP = '172.24.4.1';
const FIXTURE_NETNS = ['nhost1', 'nhost2', 'fabric', 'extnet'];

export interface NeutronLab {
  dir: string;
  networkId: string;
  subnetIds: string[];
  routerId: string;
  routerExternalIp: string;
  securityGroupId: string;
  cloudsYaml: string;
  apiSocket: string;
  /** node name → Neutron port ID */
  ports: Record<string, string>;
}

export interface NeutronNodePlan {
  name: string;
  netns: string;
  publicIP: string;
  underlaySubnet: string;
  hypervisor: string;
}

/** Node i (0-based): subnets alternate; hypervisors alternate in pairs so both same-subnet and cross-subnet peers span hypervisors. */
export function neutronNodePlan(labName: string, i: number): NeutronNodePlan {
  const k = i % 2;
  const hv = [1, 2, 2, 1][i % 4]!;
  return {
    name: `n${i + 1}`,
    netns: `wl-${labName}-n${i + 1}`,
    publicIP: `${SUBNETS[k]!.prefix}.${11 + i}`,
    underlaySubnet: SUBNETS[k]!.cidr,
    hypervisor: `nhost${hv}`,
  };
}

export async function fixture(dir: string, args: string[]): Promise<string> {
  const r = await run('bash', [FIXTURE, ...args], {
    env: { ...process.env, NEUTRON_CI_DIR: dir },
    allowFailure: true,
    timeoutMs: 600_000,
  });
  if (r.code !== 0) {
    throw new WeftError(
      `neutron fixture ${args[0]} failed: ${(r.stdout + r.stderr).trim().split('\n').slice(-4).join(' | ')}`,
      {
        hint: `see ${dir}/log`,
      },
    );
  }
  return r.stdout;
}

export async function neutronInUse(): Promise<boolean> {
  const ns = await listNetns();
  return FIXTURE_NETNS.some((n) => ns.includes(n));
}

export async function buildNeutronUnderlay(
  spec: LabSpec,
  labDir: string,
  j: Journal,
  progress: (m: string) => void,
) {
  if (await neutronInUse()) {
    throw new WeftError(
      'the Neutron fixture is already running on this machine (namespaces nhost1/fabric/extnet exist)',
      {
        hint: 'take down the lab (or test) that uses it: only one Neutron underlay can run at a time',
      },
    );
  }
  const dir = join(labDir, 'neutron');
  await j.record({ kind: 'fixture', dir });
  let t = performance.now();
  await fixture(dir, ['install-dataplane']);
  await fixture(dir, ['start-dataplane', '--hypervisors', '2']);
  progress(`Neutron data plane up (2 hypervisors) in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  t = performance.now();
  const api = new NeutronClient({ endpoint: NEUTRON_URL });
  const post = <T>(path: string, body: unknown) => api.request<T>('POST', path, { body });
  type Id = { id: string };

  const ext = (
    await post<{ network: Id }>('/networks', {
      network: {
        name: 'public',
        'router:external': true,
        'provider:network_type': 'flat',
        'provider:physical_network': 'public',
      },
    })
  ).network;
  await post('/subnets', {
    subnet: {
      network_id: ext.id,
      ip_version: 4,
      cidr: '172.24.4.0/24',
      gateway_ip: NEUTRON_EXTERNAL_IP,
      enable_dhcp: false,
      allocation_pools: [{ start: '172.24.4.100', end: '172.24.4.200' }],
    },
  });
  const sg = (
    await post<{ security_group: Id }>('/security-groups', {
      security_group: { name: `weft-${spec.name}-nodes` },
    })
  ).security_group;
  // Nodes, pods and the external network may talk to nodes; drops can then only come from anti-spoofing.
  for (const remote of ['10.0.0.0/16', spec.network, '172.24.4.0/24']) {
    await post('/security-group-rules', {
      security_group_rule: {
        security_group_id: sg.id,
        direction: 'ingress',
        ethertype: 'IPv4',
        remote_ip_prefix: remote,
      },
    });
  }
  const net = (await post<{ network: Id }>('/networks', { network: { name: `weft-${spec.name}` } })).network;
  const subnetIds: string[] = [];
  for (const [k, s] of SUBNETS.entries()) {
    const sn = (
      await post<{ subnet: Id }>('/subnets', {
        subnet: {
          name: `weft-${spec.name}-${k}`,
          network_id: net.id,
          ip_version: 4,
          cidr: s.cidr,
          gateway_ip: s.gateway,
          enable_dhcp: false,
        },
      })
    ).subnet;
    subnetIds.push(sn.id);
  }
  const router = (
    await post<{
      router: Id & { external_gateway_info?: { external_fixed_ips?: { ip_address: string }[] } };
    }>('/routers', {
      router: { name: `weft-${spec.name}`, external_gateway_info: { network_id: ext.id } },
    })
  ).router;
  for (const id of subnetIds) await api.addRouterInterface(router.id, id);
  const routerExternalIp = router.external_gateway_info?.external_fixed_ips?.[0]?.ip_address;
  if (!routerExternalIp) throw new WeftError('the lab router got no external address');

  const cloudsYaml = join(labDir, 'clouds.yaml');
  await writeFile(
    cloudsYaml,
    `clouds:\n  ${NEUTRON_CLOUD}:\n    auth_type: none\n    network_endpoint_override: ${NEUTRON_URL}\n`,
  );
  const apiSocket = join(labDir, 'neutron-api.sock');
  await startDaemon(labDir, j, 'neutron-api-bridge', [
    'socat',
    `UNIX-LISTEN:${apiSocket},fork,unlink-early,mode=600`,
    `TCP:127.0.0.1:9696`,
  ]);

  const lab: NeutronLab = {
    dir,
    networkId: net.id,
    subnetIds,
    routerId: router.id,
    routerExternalIp,
    securityGroupId: sg.id,
    cloudsYaml,
    apiSocket,
    ports: {},
  };
  // The world outside reaches pods through the router (which learns pod subnets from the agents).
  await ipIn(
    'extnet',
    [`route add ${spec.network} via ${routerExternalIp}`, `route add 10.0.0.0/16 via ${routerExternalIp}`],
    'cannot route the external network to the lab',
  );
  progress(
    `Neutron network ${SUBNETS.map((s) => s.cidr).join(' + ')}, router ${routerExternalIp} on 172.24.4.0/24, port security on (${((performance.now() - t) / 1000).toFixed(1)} s)`,
  );
  return lab;
}

/** Starts a daemon of the lab (socat bridges) detached, in a namespace when one is given. */
async function startDaemon(
  labDir: string,
  j: Journal,
  what: string,
  argv: string[],
  netns?: string,
): Promise<number> {
  const log = await open(join(labDir, `${what}.log`), 'a');
  const child = spawnIn(netns, argv, { detached: true, stdio: ['ignore', log.fd, log.fd] });
  await log.close();
  child.unref();
  if (child.pid === undefined) throw new WeftError(`cannot start ${what} (${argv[0]})`);
  await j.record({ kind: 'process', pid: child.pid, what });
  return child.pid;
}

/** A VM on the lab network: port (fixed IP, security group, hypervisor), plugged by the fixture, default route via its subnet's router. */
export async function plugVm(
  lab: NeutronLab,
  j: Journal,
  vm: { name: string; netns: string; ip: string; subnetIndex: number; hypervisor: string },
): Promise<string> {
  const api = new NeutronClient({ endpoint: NEUTRON_URL });
  const port = (
    await api.request<{ port: { id: string } }>('POST', '/ports', {
      body: {
        port: {
          name: vm.netns,
          network_id: lab.networkId,
          device_id: vm.netns,
          device_owner: 'weft:node', // compute:* ports are left unbridged by the linuxbridge agent (Nova's job)
          fixed_ips: [{ subnet_id: lab.subnetIds[vm.subnetIndex], ip_address: vm.ip }],
          security_groups: [lab.securityGroupId],
          'binding:host_id': vm.hypervisor,
        },
      },
    })
  ).port;
  await j.record({ kind: 'netns', name: vm.netns });
  await fixture(lab.dir, ['plug-vm', vm.netns, port.id, vm.hypervisor]);
  await ipIn(
    vm.netns,
    [`route add default via ${SUBNETS[vm.subnetIndex]!.gateway}`],
    `cannot route ${vm.name}`,
  );
  lab.ports[vm.name] = port.id;
  return port.id;
}

/** The node's end of the API bridge: 127.0.0.1:9696 inside its namespace. */
export async function bridgeApiInto(
  lab: NeutronLab,
  labDir: string,
  j: Journal,
  netns: string,
): Promise<void> {
  await startDaemon(
    labDir,
    j,
    `neutron-api-${netns}`,
    ['socat', 'TCP-LISTEN:9696,bind=127.0.0.1,fork,reuseaddr', `UNIX-CONNECT:${lab.apiSocket}`],
    netns,
  );
}

export const neutronSubnetIndex = (ip: string): number => (ip.startsWith('10.0.2.') ? 1 : 0);
export const NEUTRON_ETCD_IP = '10.0.1.5';
