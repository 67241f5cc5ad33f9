/**
 * A Magnum cluster template as a lab spec: `weft lab up -f template.yaml` provisions the cluster a
 * Magnum ClusterTemplate (plus the Cluster's node_count) describes, the way Magnum did for the talk,
 * and says how every field and label mapped. Magnum's fields are read as its API and its
 * `openstack coe cluster template create` write them:
 *
 *   name: k8s-flannel
 *   coe: kubernetes
 *   network_driver: flannel
 *   labels: {flannel_backend: host-gw, flannel_network_cidr: 10.100.0.0/16, flannel_network_subnetlen: 24}
 *   node_count: 3            # a Cluster field; also `cluster: {node_count: 3, labels: {…}}`
 *
 * Labels may also be Magnum's CLI string "k1=v1,k2=v2". A cluster's labels are merged over the
 * template's (merge_labels). A label or field the lab cannot honour is an error naming it; one that
 * has no meaning in a lab (images, flavors, volumes, masters) is ignored, with a note saying so.
 */
import { BACKEND_TYPES } from '../config/network-config.js';
import { Cidr } from '../util/ipv4.js';
import { ConfigError } from '../util/errors.js';

/** How one field or label was taken: what it became in the lab spec, or why it was ignored. */
export interface MagnumMapping {
  /** As written: "labels.flannel_backend", "node_count", or "(default)" for what the template left out. */
  field: string;
  value: string;
  /** "backend: host-gw", or "ignored: …". */
  became: string;
}

export interface MagnumConversion {
  /** Lab spec keys (validate with validateSpec; command-line flags go over them). */
  spec: Record<string, unknown>;
  mapping: MagnumMapping[];
  templateName: string | undefined;
}

/** Keys that only a Magnum template or cluster has (a lab spec has none of them). */
const MARKERS = [
  'cluster_template',
  'cluster',
  'labels',
  'coe',
  'network_driver',
  'node_count',
  'master_count',
];

export function isMagnumTemplate(doc: Record<string, unknown>): boolean {
  return MARKERS.some((k) => k in doc);
}

/** Fields of Magnum's ClusterTemplate and Cluster that have no meaning in a lab on one machine. */
const IGNORED_FIELDS: Record<string, string> = {
  master_count: 'the lab has no masters: etcd runs on a VM of its own, every node is a worker',
  fixed_network: "the lab makes its own Neutron network (the fixture's), as Magnum did when none was given",
  fixed_subnet: 'the lab makes its own subnets: 10.0.1.0/24 and 10.0.2.0/24 behind one router',
  external_network_id: "the lab's router uses the fixture's external network 172.24.4.0/24",
  floating_ip_enabled:
    'the lab gives nodes no floating IPs; the external host reaches pods through the router',
  master_lb_enabled: 'no masters, no API load balancer',
  dns_nameserver: 'nodes resolve nothing in the lab',
  image_id: 'nodes are network namespaces, not VMs booted from an image',
  image: 'nodes are network namespaces, not VMs booted from an image',
  flavor_id: 'nodes are network namespaces (no flavor)',
  flavor: 'nodes are network namespaces (no flavor)',
  master_flavor_id: 'no masters',
  master_flavor: 'no masters',
  keypair_id: 'no SSH into namespaces: use weft lab exec',
  keypair: 'no SSH into namespaces: use weft lab exec',
  docker_volume_size: 'no container runtime storage in the lab',
  docker_storage_driver: 'no container runtime storage in the lab',
  volume_driver: 'no volumes in the lab',
  http_proxy: 'no proxies in the lab',
  https_proxy: 'no proxies in the lab',
  no_proxy: 'no proxies in the lab',
  tls_disabled: 'no Kubernetes API in the lab',
  apiserver_port: 'no Kubernetes API in the lab',
  registry_enabled: 'no image registry in the lab',
  insecure_registry: 'no image registry in the lab',
  public: 'template visibility has no meaning here',
  hidden: 'template visibility has no meaning here',
  tags: 'template tags have no meaning here',
  cluster_distro: 'nodes are network namespaces',
  os_distro: 'nodes are network namespaces',
  discovery_url: 'etcd is a single member started by the lab',
  create_timeout: 'the lab has its own timeouts',
  cluster_template_id: 'this file is the template',
  merge_labels: "the cluster's labels are always merged over the template's",
  uuid: 'not needed',
  server_type: 'nodes are network namespaces (vm or bm alike)',
};

/** flannel_* labels that are image tags: nothing to map (the lab runs weft's agent, not flanneld's image). */
const IGNORED_FLANNEL_LABELS: Record<string, string> = {
  flannel_tag: "image tag of flanneld: the lab's nodes run weft's agent, which speaks Flannel's formats",
  flannel_cni_tag: "image tag of Flannel's CNI plugin: the lab's pods are attached by weft-cni",
};

const bad = (field: string, problem: string, hint?: string): never => {
  throw new ConfigError(field, problem, hint);
};

const text = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v));

/** Magnum's labels: a mapping, or the CLI's "k1=v1,k2=v2" string. */
function labelsOf(v: unknown, field: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (typeof v === 'string') {
    const out: Record<string, string> = {};
    for (const part of v.split(',').filter((p) => p.trim() !== '')) {
      const eq = part.indexOf('=');
      if (eq < 1) bad(field, `"${part}" is not key=value`, 'labels are a mapping or "k1=v1,k2=v2"');
      out[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
    }
    return out;
  }
  if (typeof v !== 'object' || Array.isArray(v)) bad(field, 'must be a mapping or "k1=v1,k2=v2"');
  return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, text(x)]));
}

/** Lab names are 1-8 lowercase letters or digits: Magnum's template name made to fit. */
function labNameOf(name: string): string {
  return (
    name
      .toLowerCase()
      .replace(/[^a-z0-9]/g, '')
      .slice(0, 8) || 'magnum'
  );
}

/** Converts a Magnum template document (already parsed from YAML/JSON) into lab spec keys. */
export function convertMagnumTemplate(doc: Record<string, unknown>): MagnumConversion {
  const isObj = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v);
  for (const k of ['cluster_template', 'cluster'])
    if (k in doc && !isObj(doc[k])) bad(k, 'must be a mapping of Magnum fields');
  const tmpl = isObj(doc.cluster_template) ? doc.cluster_template : {};
  const cluster = isObj(doc.cluster) ? doc.cluster : {};
  const top = Object.fromEntries(
    Object.entries(doc).filter(([k]) => k !== 'cluster_template' && k !== 'cluster'),
  );
  // Where each field came from, for error messages naming it as written.
  const fields = new Map<string, { value: unknown; as: string }>();
  for (const [src, prefix] of [
    [tmpl, 'cluster_template.'],
    [top, ''],
    [cluster, 'cluster.'],
  ] as const)
    for (const [k, v] of Object.entries(src))
      if (k !== 'labels') fields.set(k, { value: v, as: `${prefix}${k}` });
  const labels: Record<string, string> = {};
  const labelAs = new Map<string, string>();
  for (const [src, prefix] of [
    [tmpl, 'cluster_template.labels'],
    [top, 'labels'],
    [cluster, 'cluster.labels'],
  ] as const)
    for (const [k, v] of Object.entries(labelsOf(src.labels, prefix))) {
      labels[k] = v;
      labelAs.set(k, `${prefix}.${k}`);
    }

  const spec: Record<string, unknown> = {};
  const mapping: MagnumMapping[] = [];
  const map = (field: string, value: unknown, became: string) =>
    mapping.push({ field, value: value === undefined ? '' : text(value), became });

  // --- the template's own fields
  const known = new Set(['name', 'coe', 'network_driver', 'node_count', ...Object.keys(IGNORED_FIELDS)]);
  for (const [k, f] of fields)
    if (!known.has(k))
      bad(
        f.as,
        'unknown Magnum cluster template or cluster field',
        'see `openstack coe cluster template create --help`',
      );
  const name = fields.get('name');
  if (name) {
    if (typeof name.value !== 'string' || name.value === '') bad(name.as, 'must be a non-empty string');
    spec.name = labNameOf(name.value as string);
    map(
      name.as,
      name.value,
      `name: ${spec.name as string} (lab names are 1-8 lowercase letters/digits; --name overrides)`,
    );
  }
  const coe = fields.get('coe');
  if (coe && coe.value !== 'kubernetes')
    bad(coe.as, `${text(coe.value)} is not modelled by the lab`, 'use coe: kubernetes (Flannel networking)');
  if (coe)
    map(coe.as, coe.value, 'nodes and pods as Kubernetes would wire them (agent per node, pods through CNI)');
  const driver = fields.get('network_driver');
  if (driver && driver.value !== 'flannel')
    bad(
      driver.as,
      `${text(driver.value)} is not what the lab runs`,
      "use network_driver: flannel (weft speaks Flannel's etcd keyspace, leases and VXLAN format)",
    );
  map(
    driver?.as ?? '(default) network_driver',
    driver?.value ?? 'flannel',
    "weft's agent on every node, in Flannel's formats (etcd keyspace, leases, subnet.env, VXLAN)",
  );
  const count = fields.get('node_count');
  if (count) {
    const n = typeof count.value === 'string' ? Number(count.value) : count.value;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 60)
      bad(count.as, `must be an integer between 1 and 60, got ${text(count.value)}`);
    spec.nodes = n;
    map(count.as, count.value, `nodes: ${String(n)}`);
  } else {
    spec.nodes = 1;
    map('(default) node_count', 1, "nodes: 1 (Magnum's default node_count)");
  }
  for (const [k, f] of fields) if (k in IGNORED_FIELDS) map(f.as, f.value, `ignored: ${IGNORED_FIELDS[k]!}`);
  spec.underlay = 'neutron';
  map(
    '(template)',
    'Magnum cluster',
    'underlay: neutron (Magnum clusters run on a Neutron tenant network; --underlay overrides)',
  );

  // --- labels
  const label = (k: string) => labelAs.get(k) ?? `labels.${k}`;
  const backendOf = (v: string, field: string): string => {
    if (!['udp', 'vxlan', 'host-gw'].includes(v))
      bad(field, `${v} is not a Flannel backend Magnum offers`, 'use udp, vxlan or host-gw');
    if (!(BACKEND_TYPES as readonly string[]).includes(v))
      bad(field, `the ${v} backend is not available in this weft`, `use one of ${BACKEND_TYPES.join(', ')}`);
    return v;
  };
  let backend: string | undefined;
  if ('flannel_backend' in labels) {
    backend = backendOf(labels.flannel_backend!, label('flannel_backend'));
    map(label('flannel_backend'), labels.flannel_backend, `backend: ${backend}`);
  }
  if ('flannel_use_vxlan' in labels) {
    const v = labels.flannel_use_vxlan!.toLowerCase();
    if (!['yes', 'no', 'true', 'false'].includes(v))
      bad(label('flannel_use_vxlan'), `must be yes/no or true/false, got ${labels.flannel_use_vxlan!}`);
    const implied = v === 'yes' || v === 'true' ? 'vxlan' : 'udp';
    if (backend !== undefined && backend !== implied)
      bad(
        label('flannel_use_vxlan'),
        `${labels.flannel_use_vxlan!} means ${implied}, but flannel_backend says ${backend}`,
        'drop flannel_use_vxlan (Magnum replaced it by flannel_backend in 2016)',
      );
    backend ??= backendOf(implied, label('flannel_use_vxlan'));
    map(
      label('flannel_use_vxlan'),
      labels.flannel_use_vxlan,
      `backend: ${implied} (the 2015 label; flannel_backend replaced it)`,
    );
  }
  if (backend === undefined) {
    backend = 'vxlan';
    map(
      '(default) flannel_backend',
      'vxlan',
      "backend: vxlan (Magnum's default since 2019; it was udp before)",
    );
  }
  spec.backend = backend;

  let network = Cidr.parse('10.100.0.0/16')!;
  if ('flannel_network_cidr' in labels) {
    const c = Cidr.parse(labels.flannel_network_cidr!, true);
    if (!c)
      bad(
        label('flannel_network_cidr'),
        `${labels.flannel_network_cidr!} is not an IPv4 CIDR with zero host bits`,
      );
    network = c!;
    map(label('flannel_network_cidr'), labels.flannel_network_cidr, `network: ${network.toString()}`);
  } else map('(default) flannel_network_cidr', '10.100.0.0/16', "network: 10.100.0.0/16 (Magnum's default)");
  spec.network = network.toString();

  if ('flannel_network_subnetlen' in labels) {
    const raw = labels.flannel_network_subnetlen!;
    const n = Number(raw);
    // The network must hold at least 4 node subnets (what weft's network config requires).
    if (!Number.isInteger(n) || n < network.len + 2 || n > 30)
      bad(
        label('flannel_network_subnetlen'),
        `must be an integer from ${network.len + 2} (4 subnets of the network's /${network.len}) to 30, got ${raw}`,
      );
    spec.subnetLen = n;
    map(label('flannel_network_subnetlen'), raw, `subnetLen: ${n}`);
  } else {
    spec.subnetLen = 24;
    map('(default) flannel_network_subnetlen', 24, "subnetLen: 24 (Magnum's default)");
  }

  for (const [k, v] of Object.entries(labels)) {
    if (
      ['flannel_backend', 'flannel_use_vxlan', 'flannel_network_cidr', 'flannel_network_subnetlen'].includes(
        k,
      )
    )
      continue;
    if (k in IGNORED_FLANNEL_LABELS) map(label(k), v, `ignored: ${IGNORED_FLANNEL_LABELS[k]!}`);
    else if (k.startsWith('flannel_'))
      bad(
        label(k),
        'unknown Flannel label',
        "Magnum's Flannel labels: flannel_backend, flannel_network_cidr, flannel_network_subnetlen, flannel_use_vxlan, flannel_tag, flannel_cni_tag",
      );
    else map(label(k), v, 'ignored: not a network label (the lab models the pod network only)');
  }
  return {
    spec,
    mapping,
    templateName: typeof name?.value === 'string' ? name.value : undefined,
  };
}

/** The mapping as printed by `weft lab up -f template.yaml`, one line per field or label. */
export function formatMagnumMapping(c: MagnumConversion): string {
  const w = Math.max(...c.mapping.map((m) => `${m.field}=${m.value}`.length));
  return [
    `Magnum cluster template${c.templateName ? ` "${c.templateName}"` : ''} as a lab spec:`,
    ...c.mapping.map((m) => `  ${`${m.field}=${m.value}`.padEnd(w)}  -> ${m.became}`),
  ].join('\n');
}
