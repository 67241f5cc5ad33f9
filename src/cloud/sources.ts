/**
 * Where `weft cloud-routes` learns which node carries which pod subnet, for clusters whose overlay is
 * not weft's own agent:
 *  - Flannel's etcd keyspace (stock flanneld, e.g. with the host-gw backend): every lease
 *    `<prefix>/subnets/<a.b.c.d>-<len>` with its PublicIP is one assignment (node = PublicIP, as
 *    Flannel leases carry no node name);
 *  - a file holding either a list of `{node, nodeIP, podCIDR}` (JSON or YAML) or a Kubernetes NodeList
 *    as `kubectl get nodes -o json` prints it (metadata.name, spec.podCIDR(s), the InternalIP of
 *    status.addresses).
 *
 * A source never decides what to remove: it reports what it sees. A source that cannot be read throws,
 * and the coordinator then changes nothing (a half-written file must not withdraw every route). An
 * entry that cannot be understood is reported and its node is "held": kept as it is, neither updated
 * nor reaped, until the entry is readable again.
 */
import { watch as fsWatch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { SubnetRegistry, connectEtcd } from '../store/registry.js';
import { Cidr, parseIPv4 } from '../util/ipv4.js';
import { WeftError } from '../util/errors.js';

/** One node's pod subnet, as the cluster assigned it. */
export interface NodeAssignment {
  /** Stable node identity (Kubernetes node name, or the PublicIP of a Flannel lease). */
  node: string;
  /** The node's address on the cloud network: its port has this fixed IP, routes point to it. */
  nodeIP: string;
  /** IPv4 pod subnet, zero host bits. */
  podCIDR: string;
}

export interface AssignmentSnapshot {
  nodes: NodeAssignment[];
  /** Entries that were skipped, one line each, naming the entry and what is wrong. */
  problems: string[];
  /** Nodes whose entry is unreadable: left as they are (not updated, not reaped). */
  held: string[];
  /** Pod subnets whose entry is unreadable: whichever node carries one is held too. */
  heldSubnets: string[];
}

export interface AssignmentSource {
  /** For logs and status, e.g. "flannel etcd http://10.0.0.5:2379 /coreos.com/network". */
  readonly description: string;
  /** The current assignments; throws a WeftError when the source itself cannot be read. */
  read(): Promise<AssignmentSnapshot>;
  /** Calls onChange whenever the assignments may have changed; resolves to a function that stops watching. */
  watch(onChange: (why: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

// ------------------------------------------------------------------------------------ Flannel's etcd

export class FlannelEtcdSource implements AssignmentSource {
  readonly description: string;
  readonly registry: SubnetRegistry;
  #revision = '0';

  constructor(endpoints: string[], prefix = '/coreos.com/network') {
    this.registry = new SubnetRegistry(connectEtcd(endpoints), prefix);
    this.description = `flannel etcd ${endpoints.join(',')} ${this.registry.prefix}`;
  }

  async read(): Promise<AssignmentSnapshot> {
    let listing;
    try {
      listing = await this.registry.list();
    } catch (e) {
      throw new WeftError(
        `cannot read Flannel's leases from etcd (${this.description}): ${(e as Error).message}`,
        { hint: 'check --etcd-endpoints and that etcd is up' },
      );
    }
    this.#revision = listing.revision;
    const problems = listing.corrupt.map((c) => `lease ${c.key}: ${c.reason}`);
    // An unreadable lease names no node, only its subnet (in the key): hold whoever carries that subnet.
    const heldSubnets = listing.corrupt.flatMap((c) => Cidr.fromKey(c.key)?.toString() ?? []);
    const nodes = listing.leases.map((l) => ({
      node: l.attrs.PublicIP,
      nodeIP: l.attrs.PublicIP,
      podCIDR: l.subnet.toString(),
    }));
    return { nodes, problems, held: [], heldSubnets };
  }

  async watch(onChange: (why: string) => void): Promise<() => Promise<void>> {
    let stop: (() => Promise<void>) | undefined;
    let closed = false;
    const start = async (from: string): Promise<void> => {
      stop = await this.registry.watch(from, {
        onEvents: (events) => onChange(`${events.length} lease event(s)`),
        // Compaction or a cancelled watch: re-list (through onChange) and watch again from the new revision.
        onLost: (reason) => {
          onChange(`lease watch lost (${reason})`);
          void (async () => {
            await stop?.();
            if (!closed) await start(String(BigInt(this.#revision) + 1n)).catch(() => undefined);
          })();
        },
        onConnected: () => onChange('etcd reconnected'),
      });
    };
    await start(String(BigInt(this.#revision) + 1n));
    return async () => {
      closed = true;
      await stop?.();
    };
  }

  async close(): Promise<void> {
    await this.registry.close();
  }
}

// ------------------------------------------------------------------------------------ a file

/** Parses the text of a nodes file (JSON or YAML): a list of assignments, or a Kubernetes NodeList. */
export function parseNodesDocument(text: string, where: string): AssignmentSnapshot {
  if (text.trim() === '') {
    throw new WeftError(`${where} is empty`, {
      hint: 'write the file atomically (write a temporary file, then rename it over the old one)',
    });
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new WeftError(`${where} is neither JSON nor YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  const isObj = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v);
  let entries: unknown[];
  let kube = false;
  if (Array.isArray(doc)) entries = doc;
  else if (isObj(doc) && Array.isArray(doc.items)) {
    entries = doc.items;
    kube = true;
  } else if (isObj(doc) && Array.isArray(doc.nodes)) entries = doc.nodes;
  else {
    throw new WeftError(
      `${where}: expected a list of {node, nodeIP, podCIDR} or a Kubernetes NodeList (kubectl get nodes -o json)`,
    );
  }
  const out: AssignmentSnapshot = { nodes: [], problems: [], held: [], heldSubnets: [] };
  const seen = new Map<string, string>();
  entries.forEach((e, i) => {
    const r = kube || (isObj(e) && isObj(e.metadata)) ? fromKubeNode(e) : fromPlain(e);
    const label = `${where} entry ${i + 1}${r.node ? ` (${r.node})` : ''}`;
    if ('problem' in r) {
      out.problems.push(`${label}: ${r.problem}`);
      if (r.node) out.held.push(r.node);
      return;
    }
    const ip = seen.get(r.node);
    if (ip !== undefined && ip !== r.nodeIP) {
      out.problems.push(`${label}: node listed twice with different IPs (${ip}, ${r.nodeIP})`);
      out.held.push(r.node);
      return;
    }
    seen.set(r.node, r.nodeIP);
    for (const podCIDR of r.podCIDRs) out.nodes.push({ node: r.node, nodeIP: r.nodeIP, podCIDR });
  });
  out.nodes = out.nodes.filter((n) => !out.held.includes(n.node));
  return out;
}

type Parsed = { node: string; nodeIP: string; podCIDRs: string[] } | { node?: string; problem: string };

function fromPlain(e: unknown): Parsed {
  if (typeof e !== 'object' || e === null) return { problem: 'not an object {node, nodeIP, podCIDR}' };
  const o = e as Record<string, unknown>;
  const node = typeof o.node === 'string' && o.node !== '' ? o.node : undefined;
  if (!node) return { problem: 'missing "node" (the node name)' };
  const cidrs = Array.isArray(o.podCIDRs) ? o.podCIDRs : o.podCIDR === undefined ? [] : [o.podCIDR];
  return checked(node, o.nodeIP, cidrs, 'nodeIP', 'podCIDR');
}

function fromKubeNode(e: unknown): Parsed {
  const o = (e ?? {}) as {
    metadata?: { name?: unknown };
    spec?: { podCIDR?: unknown; podCIDRs?: unknown };
    status?: { addresses?: unknown };
  };
  const node = typeof o.metadata?.name === 'string' ? o.metadata.name : undefined;
  if (!node) return { problem: 'a Node without metadata.name' };
  const addrs = Array.isArray(o.status?.addresses) ? (o.status.addresses as unknown[]) : [];
  const internal = addrs
    .map((a) => a as { type?: unknown; address?: unknown })
    .filter((a) => a.type === 'InternalIP' && typeof a.address === 'string')
    .map((a) => a.address as string);
  const v4 = internal.find((a) => parseIPv4(a) !== undefined);
  const cidrs = Array.isArray(o.spec?.podCIDRs)
    ? o.spec.podCIDRs
    : o.spec?.podCIDR === undefined
      ? []
      : [o.spec.podCIDR];
  // Dual-stack nodes list an IPv6 range too; the cloud routes here are IPv4.
  const v4cidrs = cidrs.filter((c) => typeof c !== 'string' || !c.includes(':'));
  return checked(node, v4, v4cidrs, 'status.addresses InternalIP (IPv4)', 'spec.podCIDR');
}

function checked(node: string, ip: unknown, cidrs: unknown[], ipField: string, cidrField: string): Parsed {
  if (typeof ip !== 'string' || parseIPv4(ip) === undefined)
    return { node, problem: `${ipField} is missing or not an IPv4 address: ${JSON.stringify(ip)}` };
  if (cidrs.length === 0) return { node, problem: `no ${cidrField} (not assigned yet?)` };
  const podCIDRs: string[] = [];
  for (const c of cidrs) {
    const parsed = typeof c === 'string' ? Cidr.parse(c, true) : undefined;
    if (!parsed)
      return { node, problem: `${cidrField} ${JSON.stringify(c)} is not an IPv4 CIDR with zero host bits` };
    podCIDRs.push(parsed.toString());
  }
  return { node, nodeIP: ip, podCIDRs };
}

export class NodesFileSource implements AssignmentSource {
  readonly description: string;
  readonly path: string;

  constructor(path: string) {
    this.path = path;
    this.description = `nodes file ${path}`;
  }

  async read(): Promise<AssignmentSnapshot> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (e) {
      throw new WeftError(`cannot read ${this.path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, {
        hint: 'pass --nodes-file with a list of {node, nodeIP, podCIDR} or `kubectl get nodes -o json`',
      });
    }
    return parseNodesDocument(text, this.path);
  }

  /** Watches the directory, so that a file replaced by rename (the safe way to write it) is seen too. */
  async watch(onChange: (why: string) => void): Promise<() => Promise<void>> {
    const name = basename(this.path);
    let timer: NodeJS.Timeout | undefined;
    const w: FSWatcher = fsWatch(dirname(this.path), (_event, file) => {
      if (file !== null && file !== name) return;
      clearTimeout(timer);
      // Editors and `kubectl > file` write in several steps: settle before reading.
      timer = setTimeout(() => onChange(`${name} changed`), 100);
    });
    w.on('error', () => onChange('file watch failed'));
    return async () => {
      clearTimeout(timer);
      w.close();
    };
  }

  async close(): Promise<void> {}
}
