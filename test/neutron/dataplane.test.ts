// weft-test: exclusive neutron-dataplane (its hypervisor namespaces exist once per machine)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { labSwitchBackend, readState, type LabState } from '../../src/lab/lab.js';
import { spoofDrops } from '../../src/lab/neutron-evidence.js';
import { NEUTRON_URL } from '../../src/lab/neutron-underlay.js';
import { run } from '../../src/util/exec.js';
import { allPairsFailures, eventually, inNs, pings, seenSource, upLab } from '../helpers/lab.js';

const WEFT = fileURLToPath(new URL('../../src/cli/weft.js', import.meta.url));

async function neutron<T>(path: string): Promise<T> {
  const r = await fetch(`${NEUTRON_URL}/v2.0${path}`);
  return (await r.json()) as T;
}

const mtuOf = async (ns: string) => Number((await inNs(ns, ['cat', '/sys/class/net/eth0/mtu'])).stdout);

/**
 * The talk's situation on real Neutron: 3 node VMs over 2 hypervisors and 2 subnets behind a router,
 * port security on, Neutron's own VXLAN underneath. n1 (10.0.1.11, nhost1) and n3 (10.0.1.13, nhost2)
 * share a subnet; n2 (10.0.2.12, nhost2) is behind the router.
 */
test(
  'Neutron data plane: host-gw is dropped by anti-spoofing; vxlan double-encapsulates at MTU 1400; neutron routes natively at 1450',
  { timeout: 900_000 },
  async (t) => {
    const { state, down } = await upLab({
      nodes: 3,
      podsPerNode: 1,
      underlay: 'neutron',
      backend: 'host-gw',
    });
    t.after(down);
    const name = state.name;
    const pod = (n: string) => state.pods.find((p) => p.node === n)!;
    const nodeNs = (n: string) => state.nodes.find((x) => x.name === n)!.netns;

    await t.test(
      "host-gw: pod traffic between nodes of one subnet is dropped by Neutron's anti-spoofing",
      async () => {
        const n1 = state.nodes.find((n) => n.name === 'n1')!;
        const before = await spoofDrops(state, n1);
        assert.equal(
          await pings(pod('n1').netns, pod('n3').ip, 3),
          false,
          'no reply through host-gw on Neutron',
        );
        const after = await spoofDrops(state, n1);
        assert.ok(after >= before + 3, `n1's port dropped the pod-sourced packets (${before} -> ${after})`);
        const ports = await neutron<{ ports: { allowed_address_pairs: unknown[]; name: string }[] }>(
          '/ports?device_owner=weft:node',
        );
        assert.ok(
          ports.ports.every((p) => p.allowed_address_pairs.length === 0),
          'host-gw asked Neutron for nothing',
        );
      },
    );

    await t.test('vxlan: pod MTU 1400 (1450 minus 50), every pod reaches every pod', async () => {
      await labSwitchBackend(name, 'vxlan');
      const s = await readState(name);
      assert.equal(await mtuOf(pod('n1').netns), 1400);
      assert.equal(await mtuOf(nodeNs('n1')), 1450);
      assert.deepEqual(await allPairsFailures(s), []);
    });

    let s: LabState;
    await t.test(
      'neutron: every pod reaches every pod natively at MTU 1450, with no UDP 8472 on the node interfaces',
      async () => {
        await labSwitchBackend(name, 'neutron');
        s = await readState(name);
        assert.equal(await mtuOf(pod('n1').netns), 1450);
        // Cloud changes reach Neutron's data plane within about a second (agent polling).
        assert.ok(
          await eventually(async () => (await allPairsFailures(s)).length === 0, 30_000),
          `unreachable: ${(await allPairsFailures(s)).join(' ')}`,
        );
        const capture = (ns: string, filter: string) =>
          inNs(ns, ['timeout', '3', 'tcpdump', '-ni', 'eth0', '-c', '1000', filter], {
            timeoutMs: 10_000,
          }).then((r) => Number(/(\d+) packets? captured/.exec(r.stderr)?.[1] ?? NaN));
        const [vx1, vx2, icmp1] = [
          capture(nodeNs('n1'), 'udp port 8472'),
          capture(nodeNs('n2'), 'udp port 8472'),
          capture(nodeNs('n1'), 'icmp'),
        ];
        await new Promise((r) => setTimeout(r, 500));
        assert.ok(await pings(pod('n1').netns, pod('n2').ip, 5));
        assert.ok(await pings(pod('n1').netns, pod('n3').ip, 5));
        assert.equal(await vx1, 0, 'no VXLAN on n1 eth0');
        assert.equal(await vx2, 0, 'no VXLAN on n2 eth0');
        assert.ok((await icmp1) >= 10, 'the pod traffic itself crossed eth0 (un-encapsulated)');
        const router = await neutron<{ router: { routes: { destination: string; nexthop: string }[] } }>(
          `/routers/${s.neutron!.routerId}`,
        );
        for (const n of s.nodes) {
          const sub = (await inNs(n.netns, ['cat', join(n.dir, 'subnet.env')])).stdout.match(
            /FLANNEL_SUBNET=(\d+\.\d+\.\d+)\.1\/24/,
          )?.[1];
          assert.ok(
            router.router.routes.some((r) => r.destination === `${sub}.0/24` && r.nexthop === n.publicIP),
            `router routes ${sub}.0/24 via ${n.publicIP}`,
          );
        }
      },
    );

    await t.test(
      'a host on the external network reaches a pod directly through the router (no NAT on the way in)',
      async () => {
        assert.ok(await eventually(() => pings(s.external.netns, pod('n2').ip), 10_000));
        assert.equal(await seenSource(s.external.netns, pod('n2').netns, pod('n2').ip), s.external.ip);
      },
    );

    await t.test('a node leaving removes its address pairs and router route', async () => {
      const n3 = s.nodes.find((n) => n.name === 'n3')!;
      const r = await run(process.execPath, [WEFT, 'leave', '--socket', join(n3.dir, 'agent.sock')]);
      assert.match(r.stdout, /left the cluster/);
      const port = await neutron<{ port: { allowed_address_pairs: unknown[] } }>(
        `/ports/${s.neutron!.ports.n3}`,
      );
      assert.deepEqual(port.port.allowed_address_pairs, []);
      const router = await neutron<{ router: { routes: { nexthop: string }[] } }>(
        `/routers/${s.neutron!.routerId}`,
      );
      assert.ok(
        !router.router.routes.some((x) => x.nexthop === n3.publicIP),
        'no route via the departed node',
      );
      assert.equal(router.router.routes.length, 2, 'the other nodes keep theirs');
      assert.ok(await pings(pod('n1').netns, pod('n2').ip), 'the others are undisturbed');
    });
  },
);
