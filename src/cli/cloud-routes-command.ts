import { chmod, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Command } from 'commander';
import { pino } from 'pino';
import { Gauge, Registry } from 'prom-client';
import { serve } from '../agent/http.js';
import {
  CloudRoutesCoordinator,
  type CoordinatorStatus,
  type NodeRouteStatus,
} from '../cloud/coordinator.js';
import { EtcdOwnershipStore, type OwnershipStore } from '../cloud/ownership.js';
import { FileOwnershipStore } from '../cloud/ownership-file.js';
import { FlannelEtcdSource, NodesFileSource, type AssignmentSource } from '../cloud/sources.js';
import { loadCloudConfig } from '../openstack/config.js';
import { NeutronClient } from '../openstack/neutron.js';
import { WeftError, describeError } from '../util/errors.js';
import { formatTable } from '../util/table.js';
import { agentGet } from './status-command.js';

/** `weft cloud-routes`: a thin layer over src/cloud/coordinator.ts (see docs/cloud-routes.md). */
export function registerCloudRoutes(program: Command): void {
  program
    .command('cloud-routes')
    .description(
      'program Neutron (address pairs, router routes) for pod subnets of a non-weft overlay: stock flanneld host-gw or node.spec.podCIDR',
    )
    .option('--etcd-endpoints <urls>', "source: Flannel's leases in this etcd (comma-separated URLs)")
    .option('--etcd-prefix <prefix>', "Flannel's etcd key prefix", '/coreos.com/network')
    .option(
      '--nodes-file <path>',
      'source: a JSON/YAML list of {node, nodeIP, podCIDR}, or `kubectl get nodes -o json`',
    )
    .option('--cloud <name>', 'clouds.yaml cloud (default OS_CLOUD)')
    .option('--cloud-config <path>', "clouds.yaml to use (default: openstacksdk's search order)")
    .option('--cluster-name <name>', 'recorded as owner of every route and pair', 'weft')
    .option(
      '--state-dir <dir>',
      'ownership records with --nodes-file (with etcd they live in etcd)',
      '/var/lib/weft/cloud-routes',
    )
    .option('--router <id>', "use this router instead of the one on each node's subnet")
    .option(
      '--pairs-only',
      'address pairs only, no router routes (Magnum 2016: host-gw on one subnet; other subnets and outside hosts do not reach pods)',
    )
    .option(
      '--without-extension <alias>',
      'behave as if Neutron lacked it (e.g. extraroute-atomic)',
      collect,
      [],
    )
    .option('--resync <seconds>', 'full reconcile period (repairs drift)', '30')
    .option(
      '--status-socket <path>',
      'serve /healthz /readyz /status /metrics here (mode 0600)',
      '/run/weft/cloud-routes.sock',
    )
    .option('--once', 'one reconcile, print the result, exit (0: all programmed, 2: some refused or failed)')
    .option('--release', 'remove every route and pair recorded for this cluster, then exit')
    .option('--status', "print the running coordinator's status (from --status-socket) and exit")
    .option('--json', 'with --once or --status: print JSON')
    .option('--log-level <level>', 'debug | info | warn | error', 'info')
    .action(async (o: Options) => {
      process.exitCode = await cloudRoutes(o);
    });
}

interface Options {
  etcdEndpoints?: string;
  etcdPrefix: string;
  nodesFile?: string;
  cloud?: string;
  cloudConfig?: string;
  clusterName: string;
  stateDir: string;
  router?: string;
  pairsOnly?: boolean;
  withoutExtension: string[];
  resync: string;
  statusSocket: string;
  once?: boolean;
  release?: boolean;
  status?: boolean;
  json?: boolean;
  logLevel: string;
}

const collect = (v: string, prev: string[]) => [...prev, ...v.split(',').filter(Boolean)];

async function cloudRoutes(o: Options): Promise<number> {
  if (o.status) return printRunningStatus(o.statusSocket, o.json === true);
  if (!o.etcdEndpoints === !o.nodesFile) {
    throw new WeftError('cloud-routes needs exactly one source', {
      hint: "--etcd-endpoints URL (Flannel's leases) or --nodes-file PATH (node.spec.podCIDR list)",
    });
  }
  const resync = Number(o.resync);
  if (!Number.isFinite(resync) || resync <= 0)
    throw new WeftError(`--resync: "${o.resync}" is not a positive number`);
  // One-shot runs print their own one-line results; the JSON log is for the long-running service.
  const oneShot = o.once === true || o.release === true;
  const log = pino(
    { name: 'weft-cloud-routes', level: oneShot ? 'fatal' : o.logLevel, base: { pid: process.pid } },
    pino.destination(oneShot ? 2 : 1),
  );
  const env = { ...process.env, ...(o.cloudConfig && { OS_CLIENT_CONFIG_FILE: o.cloudConfig }) };
  const client = NeutronClient.fromCloud(loadCloudConfig({ env, ...(o.cloud && { cloud: o.cloud }) }), {
    log,
  });

  let source: AssignmentSource;
  let store: OwnershipStore;
  let fileStore: FileOwnershipStore | undefined;
  if (o.etcdEndpoints) {
    const flannel = new FlannelEtcdSource(o.etcdEndpoints.split(',').filter(Boolean), o.etcdPrefix);
    source = flannel;
    store = new EtcdOwnershipStore(flannel.registry.client, flannel.registry.prefix);
  } else {
    source = new NodesFileSource(o.nodesFile!);
    store = fileStore = new FileOwnershipStore(o.stateDir);
  }
  const coordinator = new CloudRoutesCoordinator({
    source,
    client,
    store,
    cluster: o.clusterName,
    resyncSeconds: resync,
    ...(o.router && { routerId: o.router }),
    ...(o.pairsOnly && { routes: false }),
    ...(o.withoutExtension.length && { disableExtensions: o.withoutExtension }),
    log,
  });
  try {
    if (o.release) {
      const r = await coordinator.releaseAll();
      process.stdout.write(
        `released the routes and pairs of ${r.released.length} node(s)${r.released.length ? `: ${r.released.join(' ')}` : ''}\n`,
      );
      if (r.pending.length)
        process.stderr.write(`weft cloud-routes: could not reach the cloud for: ${r.pending.join(' ')}\n`);
      return r.pending.length ? 2 : 0;
    }
    if (o.once) {
      const report = await coordinator.pass();
      if (!report.ok) throw new WeftError(report.sourceError!);
      const status = coordinator.status();
      process.stdout.write(o.json ? JSON.stringify(status, null, 2) + '\n' : formatStatus(status));
      for (const n of status.nodes.filter((x) => x.state !== 'programmed'))
        process.stderr.write(`weft cloud-routes: ${n.node} ${n.state}: ${n.reason ?? ''}\n`);
      return status.nodes.every((n) => n.state === 'programmed') && !status.pendingReaps.length ? 0 : 2;
    }
    return await runForever(coordinator, o, log);
  } finally {
    if (oneShot) {
      await coordinator.stop();
      fileStore?.close();
    }
  }

  async function runForever(c: CloudRoutesCoordinator, opts: Options, l: pino.Logger): Promise<number> {
    const registry = new Registry();
    const byState = new Gauge({
      name: 'weft_cloud_routes_nodes',
      help: 'Nodes by state (pending, programmed, refused, error)',
      labelNames: ['state'],
      registers: [registry],
      collect() {
        const s = c.status();
        for (const st of ['pending', 'programmed', 'refused', 'error'])
          this.set({ state: st }, s.nodes.filter((n) => n.state === st).length);
      },
    });
    void byState;
    await mkdir(dirname(opts.statusSocket), { recursive: true });
    const listeners = await serve(
      {
        healthy: () => c.healthy(),
        ready: () => {
          const s = c.status();
          return { ready: s.ready, reasons: s.reasons };
        },
        status: () => c.status(),
        promRegistry: registry,
      },
      { socket: opts.statusSocket },
    );
    // Root only: the status names every node, port and router of the cluster.
    await chmod(opts.statusSocket, 0o600);
    await c.start();
    l.info({ source: source.description, socket: opts.statusSocket }, 'cloud-routes running');
    process.on('SIGHUP', () => c.kick('SIGHUP'));
    await new Promise<void>((resolve) => {
      const stop = (sig: string) => {
        l.info({ signal: sig }, 'stopping (cloud objects are kept; --release removes them)');
        void c
          .stop()
          .then(() => fileStore?.close())
          .then(() => listeners.close())
          .finally(resolve);
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
    return 0;
  }
}

function formatStatus(s: CoordinatorStatus): string {
  const cell = (n: NodeRouteStatus, f: 'pair' | 'route') =>
    n.subnets.map((x) => x[f] ?? '-').join(',') || '-';
  const rows = [
    ['NODE', 'NODE IP', 'POD SUBNETS', 'STATE', 'PORT', 'PAIR', 'ROUTE', 'REASON'],
    ...s.nodes.map((n) => [
      n.node,
      n.nodeIP,
      n.subnets.map((x) => x.podCIDR).join(',') || '-',
      n.state,
      n.port ? n.port.slice(0, 8) : '-',
      cell(n, 'pair'),
      cell(n, 'route'),
      n.reason ?? '',
    ]),
  ];
  const lines = [`source: ${s.source}   cluster: ${s.cluster}`];
  for (const p of s.sourceProblems) lines.push(`skipped: ${p}`);
  if (s.reaped.length) lines.push(`removed (node left): ${s.reaped.map((r) => r.node).join(' ')}`);
  if (s.pendingReaps.length) lines.push(`removal pending: ${s.pendingReaps.join(' ')}`);
  return `${lines.join('\n')}\n\n${formatTable(rows)}`;
}

async function printRunningStatus(socket: string, json: boolean): Promise<number> {
  const r = await agentGet(socket, '/status').catch((e: unknown) => {
    const why = e instanceof WeftError ? e.message.split(': ').pop() : describeError(e);
    throw new WeftError(`cannot reach weft cloud-routes at ${socket}: ${why}`, {
      hint: 'is `weft cloud-routes` running? pass --status-socket',
    });
  });
  const s = JSON.parse(r.body) as CoordinatorStatus;
  process.stdout.write(json ? r.body + '\n' : formatStatus(s));
  return s.ready ? 0 : 3;
}
