// `weft lab up -f template.yaml` with a Magnum cluster template: the cluster it describes comes up
// (nodes, backend, pod network, subnet length), every field and label is accounted for on stdout, and
// a bad label is one line naming it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { labDown, listLabs, readState } from '../../src/lab/lab.js';
import { Cidr } from '../../src/util/ipv4.js';
import { run } from '../../src/util/exec.js';
import { etcdctl, pings, uniqueName } from '../helpers/lab.js';

const WEFT = fileURLToPath(new URL('../../src/cli/weft.js', import.meta.url));

async function withFile<T>(text: string, fn: (path: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'weft-magnum-'));
  try {
    const path = join(dir, 'template.yaml');
    await writeFile(path, text);
    return await fn(path);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test(
  'a Magnum cluster template brings up the cluster it describes, and says how each label mapped',
  { timeout: 300_000 },
  async (t) => {
    const name = uniqueName('mg');
    // As Magnum keeps them: template labels as the CLI's string, the cluster's labels merged over them.
    const template = `
cluster_template:
  name: k8s-flannel-hostgw
  coe: kubernetes
  network_driver: flannel
  image_id: fedora-coreos-38
  flavor_id: m1.small
  master_flavor_id: m1.medium
  fixed_subnet: private-subnet
  labels: flannel_backend=vxlan,flannel_network_cidr=10.100.0.0/16,flannel_network_subnetlen=26,kube_tag=v1.27.8
cluster:
  node_count: 2
  master_count: 1
  labels:
    flannel_backend: host-gw
`;
    t.after(() => labDown(name).catch(() => undefined));
    const r = await withFile(template, (f) =>
      run(process.execPath, [WEFT, 'lab', 'up', '-f', f, '--name', name, '--underlay', 'flat', '--json'], {
        allowFailure: true,
        timeoutMs: 240_000,
      }),
    );
    assert.equal(r.code, 0, r.stderr);
    const [mapping, json] = [
      r.stdout.slice(0, r.stdout.indexOf('\n{')),
      r.stdout.slice(r.stdout.indexOf('\n{')),
    ];
    const lines = mapping.split('\n');
    const said = (field: string, re: RegExp) =>
      assert.ok(
        lines.some((l) => l.includes(field) && re.test(l)),
        `stdout says how ${field} mapped (${re.source}):\n${mapping}`,
      );
    said('cluster.labels.flannel_backend=host-gw', /-> backend: host-gw/);
    said('cluster_template.labels.flannel_network_cidr=10.100.0.0/16', /-> network: 10\.100\.0\.0\/16/);
    said('cluster_template.labels.flannel_network_subnetlen=26', /-> subnetLen: 26/);
    said('cluster.node_count=2', /-> nodes: 2/);
    said('cluster.master_count=1', /-> ignored: the lab has no masters/);
    said('cluster_template.fixed_subnet=private-subnet', /-> ignored: /);
    said('cluster_template.labels.kube_tag', /-> ignored: not a network label/);
    said('cluster_template.network_driver=flannel', /Flannel's formats/);
    said('(template)', /underlay: neutron .*--underlay overrides/);
    for (const k of ['image_id', 'flavor_id', 'master_flavor_id', 'coe', 'name'])
      said(`cluster_template.${k}=`, /-> /);

    const status = JSON.parse(json) as {
      backend: string;
      nodes: { subnet: string | null }[];
      pods: unknown[];
    };
    assert.equal(status.backend, 'host-gw');
    assert.equal(status.nodes.length, 2);
    const network = Cidr.parse('10.100.0.0/16')!;
    for (const n of status.nodes) {
      const s = Cidr.parse(n.subnet ?? '')!;
      assert.ok(
        s && s.len === 26 && network.containsCidr(s),
        `node subnet ${n.subnet} is a /26 of 10.100.0.0/16`,
      );
    }
    const s = await readState(name);
    const config = await etcdctl(s, ['get', '--print-value-only', '/coreos.com/network/config']);
    assert.deepEqual(JSON.parse(config.stdout), {
      Network: '10.100.0.0/16',
      SubnetLen: 26,
      Backend: { Type: 'host-gw' },
    });
    const a = s.pods.find((p) => p.node === 'n1')!;
    const b = s.pods.find((p) => p.node === 'n2')!;
    assert.ok(await pings(a.netns, b.ip), 'pods on the two nodes reach each other over host-gw');
  },
);

test('a bad label or field is one line naming it, and nothing is built', async () => {
  const cases: [string, RegExp][] = [
    [
      'labels: {flannel_backend: geneve}',
      /^weft: labels\.flannel_backend: geneve is not a Flannel backend Magnum offers \(use udp, vxlan or host-gw\)$/,
    ],
    [
      'labels: {flannel_backed: vxlan}',
      /^weft: labels\.flannel_backed: unknown Flannel label \(Magnum's Flannel labels: /,
    ],
    [
      'labels: {flannel_network_cidr: 10.100.0.1/16}',
      /^weft: labels\.flannel_network_cidr: 10\.100\.0\.1\/16 is not an IPv4 CIDR/,
    ],
    [
      'labels: "flannel_network_cidr=10.100.0.0/16,flannel_network_subnetlen=12"',
      /^weft: labels\.flannel_network_subnetlen: must be an integer from 18 \(4 subnets of the network's \/16\) to 30, got 12$/,
    ],
    [
      'labels: {flannel_backend: host-gw, flannel_use_vxlan: "yes"}',
      /^weft: labels\.flannel_use_vxlan: yes means vxlan, but flannel_backend says host-gw/,
    ],
    [
      'network_driver: calico',
      /^weft: network_driver: calico is not what the lab runs \(use network_driver: flannel/,
    ],
    ['coe: swarm', /^weft: coe: swarm is not modelled by the lab/],
    [
      'network_driver: flannel\nnode_cont: 3',
      /^weft: node_cont: unknown Magnum cluster template or cluster field/,
    ],
    ['cluster: {node_count: 0}', /^weft: cluster\.node_count: must be an integer between 1 and 60, got 0$/],
    ['cluster: {labels: "flannel_backend"}', /^weft: cluster\.labels: "flannel_backend" is not key=value/],
  ];
  const names: string[] = [];
  for (const [yaml, re] of cases) {
    const name = uniqueName('mb');
    names.push(name);
    const r = await withFile(yaml + '\n', (f) =>
      run(process.execPath, [WEFT, 'lab', 'up', '-f', f, '--name', name], { allowFailure: true }),
    );
    assert.equal(r.code, 1, `${yaml}: exit 1`);
    assert.equal(r.stderr.trim().split('\n').length, 1, `${yaml}: one line, got ${r.stderr}`);
    assert.match(r.stderr.trim(), re, yaml);
  }
  // Only these labs: other test files bring their own labs up and down meanwhile.
  const labs = await listLabs();
  assert.deepEqual(
    names.filter((n) => labs.includes(n)),
    [],
    'no lab was made',
  );
});
