import { pickNodes } from '../bench/paths.js';
import { labSwitchBackend, type LabState, type NodeState, type PodState } from '../lab/lab.js';
import { hypervisorOf, neutronView, spoofDrops } from '../lab/neutron-evidence.js';
import { NEUTRON_URL } from '../lab/neutron-underlay.js';
import type { DemoContext } from './context.js';
import { agentStatus, dfPing, mtuOf, observe, ping } from './probe.js';
import type { Evidence, LimitResult } from './result.js';
import { traceDrop } from './trace-step.js';

/**
 * Step 4: Flannel's limits seen from the container's side, each with its evidence. On vxlan: the
 * pod MTU under double encapsulation, and pods that hosts outside the cluster cannot reach; then on
 * plain host-gw: pod traffic dropped by Neutron's port security, and the peer on another subnet that
 * the agent refuses by name. The lab is left on host-gw (the mitigation starts from there).
 */

/** The ends the limits use: two nodes of one subnet on two hypervisors (a, b), one across a router (c). */
export function limitEnds(s: LabState): { a: NodeState; b: NodeState; c: NodeState | undefined } {
  const [a, b] = pickNodes(s)!;
  const c = s.nodes.find((n) => n.underlaySubnet !== a.underlaySubnet);
  return { a, b, c };
}

export const firstPod = (s: LabState, n: NodeState): PodState => s.pods.find((p) => p.node === n.name)!;

export async function limits(
  ctx: DemoContext,
  s0: LabState,
): Promise<{ state: LabState; limits: LimitResult[]; vxlanPodMtu: number }> {
  const out: LimitResult[] = [];
  let s = s0;
  if (s.backend !== 'vxlan') s = await labSwitchBackend(s.name, 'vxlan', ctx.progress);
  const { a, b, c } = limitEnds(s);
  const mtu = await mtuLimit(s, a, b);
  out.push(mtu.limit);
  out.push(await externalLimit(s, c ?? b));
  ctx.progress(
    s.neutron
      ? 'switching to plain host-gw: no address pairs, no router routes (the agents release what neutron made)'
      : 'switching to host-gw',
  );
  s = await labSwitchBackend(s.name, 'host-gw', ctx.progress);
  const e = limitEnds(s); // the nodes as the switched lab has them (new agent pids)
  out.push(s.neutron ? await portSecurityLimit(ctx, s, e.a, e.b) : notApplicable('port-security', 'host-gw'));
  out.push(e.c ? await crossSubnetLimit(s, e.a, e.c) : notApplicable('cross-subnet', 'host-gw'));
  for (const l of out) {
    ctx.say(`   [${l.status}] ${l.claim}`);
    ctx.say(`      ${l.finding}`);
  }
  return { state: s, limits: out, vxlanPodMtu: mtu.podMtu };
}

const CLAIMS: Record<LimitResult['id'], string> = {
  'port-security': "host-gw pod traffic is dropped by Neutron's port security",
  'cross-subnet': 'host-gw cannot reach nodes on another subnet',
  mtu: 'pods get a smaller MTU under double encapsulation',
  external: 'pods are not reachable from outside the cluster on vxlan',
};

function notApplicable(id: LimitResult['id'], backend: string): LimitResult {
  return {
    id,
    claim: CLAIMS[id],
    backend,
    status: 'not-applicable',
    finding:
      'needs the neutron underlay (two subnets behind a router, port security on): run weft demo without --underlay flat',
    evidence: [],
  };
}

/** DF pings from a pod: a packet of exactly the pod's MTU passes, one byte more does not. */
async function mtuLimit(
  s: LabState,
  a: NodeState,
  b: NodeState,
): Promise<{ limit: LimitResult; podMtu: number }> {
  const [p, q] = [firstPod(s, a), firstPod(s, b)];
  const [podMtu, nodeMtu] = [await mtuOf(p.netns), await mtuOf(a.netns)];
  const pass = await dfPing(p.netns, q.ip, podMtu);
  const fail = await dfPing(p.netns, q.ip, podMtu + 1);
  const under = s.neutron
    ? `the VM's ${nodeMtu} (Neutron's VXLAN tenant network: 1500 − 50)`
    : `the node's ${nodeMtu}`;
  const shown = pass.ok && !fail.ok && podMtu === nodeMtu - 50;
  const wire = s.neutron
    ? `; between the hypervisors the ${podMtu}-byte packet travels in weft's VXLAN (+50 = ${podMtu + 50}) inside Neutron's (+50 = ${podMtu + 100})`
    : '';
  return {
    podMtu,
    limit: {
      id: 'mtu',
      claim: CLAIMS.mtu,
      backend: 'vxlan',
      status: shown ? 'shown' : 'not-shown',
      finding: `pod MTU ${podMtu} = ${under} − 50 bytes of weft's VXLAN. Sizes are whole IPv4 packets (20-byte header + 8-byte ICMP header + payload): a ${podMtu}-byte packet with Don't Fragment (ping -s ${podMtu - 28}) ${pass.ok ? 'passes' : 'FAILS'}, a ${podMtu + 1}-byte one (ping -s ${podMtu - 27}) ${fail.ok ? 'PASSES' : 'fails'}${firstLine(fail.stdout + fail.stderr, /message too long[^\n]*/)}${wire}`,
      evidence: [
        {
          kind: 'command',
          what: `ip netns exec ${p.netns} cat /sys/class/net/eth0/mtu`,
          output: String(podMtu),
        },
        {
          kind: 'command',
          what: `ip netns exec ${a.netns} cat /sys/class/net/eth0/mtu`,
          output: String(nodeMtu),
        },
        pass.evidence,
        fail.evidence,
      ],
    },
  };
}

const firstLine = (text: string, re: RegExp): string => {
  const m = re.exec(text);
  return m ? `: "${m[0].trim()}"` : '';
};

/** The lab's external host pings a pod: on vxlan nothing outside the cluster knows where pods live. */
async function externalLimit(s: LabState, n: NodeState): Promise<LimitResult> {
  const q = firstPod(s, n);
  const r = await ping(s.external.netns, q.ip, 2);
  const ev: Evidence[] = [r.evidence];
  let why: string;
  if (s.neutron) {
    const v = await neutronView(s);
    ev.push({
      kind: 'neutron-api',
      what: `GET ${NEUTRON_URL}/v2.0/routers/${v.routerId} → routes`,
      output: v.routes.length
        ? v.routes.map((x) => `${x.destination} via ${x.nexthop}`).join('\n')
        : '[] (no routes)',
    });
    why = `the Neutron router has ${v.routes.length ? `routes (${v.routes.length}), none to the pods` : 'no route to any pod subnet'}: pods exist only inside weft's VXLAN`;
  } else {
    const rt = await observe(s.external.netns, ['ip', 'route']);
    ev.push(rt.evidence);
    why = 'the external host has no route to the pod network: pods exist only inside the overlay';
  }
  return {
    id: 'external',
    claim: CLAIMS.external,
    backend: 'vxlan',
    status: r.ok ? 'not-shown' : 'shown',
    finding: `the external host ${s.external.ip} ${r.ok ? 'REACHED' : 'does not reach'} pod ${q.name} (${q.ip}): ${why} (pods reach out only through the node's masquerade)`,
    evidence: ev,
  };
}

/** Plain host-gw on Neutron: the packets leave the node and Neutron's anti-spoofing drops them. */
async function portSecurityLimit(
  ctx: DemoContext,
  s: LabState,
  a: NodeState,
  b: NodeState,
): Promise<LimitResult> {
  const [p, q] = [firstPod(s, a), firstPod(s, b)];
  const before = await spoofDrops(s, a);
  const r = await ping(p.netns, q.ip, 3);
  const after = await spoofDrops(s, a);
  const port = (await neutronView(s)).ports.find((x) => x.node === a.name)!;
  const st = await agentStatus(a);
  const peer = st.peers.find((x) => x.publicIP === b.publicIP);
  const drop = await traceDrop(ctx, s, p.name, q.name);
  const hv = hypervisorOf(s, a);
  const ev: Evidence[] = [
    r.evidence,
    {
      kind: 'counter',
      what: `ip netns exec ${hv} iptables -L neutron-linuxbri-s${port.portId.slice(0, 10)} -v -x -n (DROP packets, before → after)`,
      output: `${before} → ${after}`,
    },
    {
      kind: 'neutron-api',
      what: `GET ${NEUTRON_URL}/v2.0/ports/${port.portId}`,
      output: `port_security_enabled: ${port.portSecurity}\nallowed_address_pairs: ${JSON.stringify(port.pairs)}\nfixed_ips: ${port.fixedIp}`,
    },
    {
      kind: 'agent-status',
      what: st.what,
      output: peer
        ? `${peer.subnet}  ${peer.publicIP}  ${peer.path}  ${peer.state ?? ''}`
        : 'peer not listed',
    },
    { kind: 'trace', what: `weft trace --name ${s.name} ${p.name} ${q.name}`, output: drop.line },
  ];
  const dropped = after - before;
  const shown = !r.ok && dropped >= 3 && port.portSecurity && port.pairs.length === 0 && drop.dropped;
  return {
    id: 'port-security',
    claim: CLAIMS['port-security'],
    backend: 'host-gw',
    status: shown ? 'shown' : 'not-shown',
    finding: `${p.name} → ${q.name} (same subnet, ${hv} → ${hypervisorOf(s, b)}): ${r.ok ? 'ANSWERED' : 'no reply'}; the agent routes it ${peer?.path ?? '?'} and calls it ${peer?.state ?? '?'}, but ${a.name}'s port has port security on and no address pair, and its anti-spoofing chain dropped ${dropped} packet(s) with source ${p.ip}; the tracer: ${drop.line}`,
    evidence: ev,
  };
}

/** host-gw and a node behind the router: the agent refuses it by name rather than program a dead route. */
async function crossSubnetLimit(s: LabState, a: NodeState, c: NodeState): Promise<LimitResult> {
  const [p, q] = [firstPod(s, a), firstPod(s, c)];
  const st = await agentStatus(a);
  const peer = st.peers.find((x) => x.publicIP === c.publicIP);
  const r = await ping(p.netns, q.ip, 2);
  const refused = peer?.state === 'refused' && peer.path === 'unreachable';
  return {
    id: 'cross-subnet',
    claim: CLAIMS['cross-subnet'],
    backend: 'host-gw',
    status: refused && !r.ok ? 'shown' : 'not-shown',
    finding: `${a.name} (${a.underlaySubnet}) → ${c.name} (${c.underlaySubnet}): the agent says ${peer?.state ?? 'nothing'}: ${peer?.reason ?? ''}`,
    evidence: [
      {
        kind: 'agent-status',
        what: st.what,
        output: peer
          ? `${peer.subnet}  ${peer.publicIP}  ${peer.path}  ${peer.state ?? ''}  ${peer.reason ?? ''}`
          : 'peer not listed',
      },
      r.evidence,
    ],
  };
}
