#!/usr/bin/env node
import { Command, Option } from 'commander';
import { describeError } from '../util/errors.js';
import { FAST_PATH_MODES } from '../config/fast-path-mode.js';
import { applyEnvOptions, ENV_HELP } from './env-options.js';

/**
 * The `weft` command: one subcommand per concern, each a thin layer over a module usable without the
 * CLI. Errors end as one line on stderr and a non-zero exit, never a stack trace.
 */
const program = new Command('weft')
  .description('Flannel-compatible container networking: agent, lab, bench, status')
  .showHelpAfterError();

const collect = (v: string, prev: string[]) => [...prev, ...v.split(',').filter(Boolean)];
/** The agent's options from the environment too: weft's own prefix first, then flanneld's. */
const AGENT_ENV = ['WEFT', 'FLANNELD'] as const;

program
  .command('agent')
  .description('run the node agent: lease a subnet in etcd, program the data path, serve health and metrics')
  .option('--etcd-endpoints <urls>', 'comma-separated etcd client URLs', 'http://127.0.0.1:2379')
  .option('--etcd-prefix <prefix>', "etcd key prefix (Flannel's)", '/coreos.com/network')
  .option('--etcd-cafile <path>', 'CA certificate that signed the etcd server certificates (https://)')
  .option('--etcd-certfile <path>', 'client certificate for etcd (TLS client-certificate auth)')
  .option('--etcd-keyfile <path>', 'key of --etcd-certfile')
  .option('--etcd-username <name>', 'etcd user (etcd password auth)')
  .option('--etcd-password <password>', 'password of --etcd-username')
  .option(
    '--iface <name-or-ip>',
    'public interface, by name or address (repeatable, first match wins)',
    collect,
    [],
  )
  .option(
    '--iface-regex <regex>',
    'public interface whose IPv4 address, else name, matches (repeatable; after --iface)',
    collect,
    [],
  )
  .option(
    '--iface-can-reach <ip>',
    'public interface: the one the route to this address leaves by (after --iface-regex)',
  )
  .option('--public-ip <ip>', "IP to publish to peers (default: the interface's first address)")
  .option('--subnet-file <path>', 'where to write the subnet file', '/run/flannel/subnet.env')
  .option('--ip-masq', 'masquerade traffic from pods leaving the cluster network', false)
  .option('--subnet-lease-ttl <seconds>', 'lease TTL (Flannel: 24 h)', '86400')
  .option('--subnet-lease-renew-margin <minutes>', 'renew this long before expiry', '60')
  .option('--resync <seconds>', 'period of the full kernel reconcile that repairs drift', '10')
  .option('--healthz-addr <host:port>', 'serve the probes /healthz /readyz /metrics on TCP (never actions)')
  .option('--status-on-tcp', 'also serve /status (the cluster as this node sees it) on --healthz-addr', false)
  .option(
    '--status-socket <path>',
    'root-only unix socket: the probes, /status and the actions (POST /leave)',
    '/run/weft/agent.sock',
  )
  .option('--no-cni-server', "do not serve weft-cni's fast path (the plugin then starts Node per call)")
  .option('--cloud <name>', 'clouds.yaml cloud for cloud routing (neutron, auto); default OS_CLOUD')
  .option('--cloud-config <path>', "clouds.yaml to use (default: openstacksdk's search order)")
  .option('--cluster-name <name>', 'recorded as owner of every cloud route and pair', 'weft')
  .option('--cloud-resync <seconds>', 'period of the cloud re-check', '30')
  .option(
    '--take-over-flannel',
    "adopt Flannel's data path on this node in place (device, lease, routes; its rules removed once weft's are in)",
  )
  .option('--keep-data-path', 'on stop, leave the nftables rules too (everything keeps forwarding; rollback)')
  .addOption(
    new Option(
      '--fast-path <mode>',
      "BPF fast path for pod-to-pod traffic: bpf, auto (where the kernel can) or none (default: the network config's FastPath, else none)",
    ).choices(FAST_PATH_MODES),
  )
  .addOption(
    new Option('--log-level <level>', 'log level')
      .choices(['debug', 'info', 'warn', 'error'])
      .default('info'),
  )
  .addHelpText('after', ENV_HELP(AGENT_ENV))
  .hook('preAction', (cmd) => applyEnvOptions(cmd, AGENT_ENV))
  .action(async (o: Record<string, string | string[] | boolean | undefined>) => {
    const { runAgent } = await import('./agent-command.js');
    await runAgent(o);
  });

program
  .command('status')
  .description("print this node's lease, peers, backend and readiness")
  .option('--socket <path>', "the agent's status socket", '/run/weft/agent.sock')
  .option('--json', 'print the raw JSON')
  .action(async (o: { socket: string; json?: boolean }) => {
    const { printStatus } = await import('./status-command.js');
    process.exitCode = await printStatus(o.socket, o.json === true);
  });

program
  .command('cni-server')
  .description(
    "serve weft-cni's fast path for this network namespace without an agent (the agent serves it itself)",
  )
  .action(async () => {
    const { startCniServer } = await import('../cni/server.js');
    const { createLogger } = await import('../util/log.js');
    const log = createLogger();
    const server = await startCniServer({ log });
    for (const sig of ['SIGTERM', 'SIGINT'] as const)
      process.once(sig, () => void server.close().then(() => process.exit(0)));
  });

program
  .command('leave')
  .description(
    'make this node leave the cluster: release its cloud routes and pairs, its lease and data path; the agent exits',
  )
  .option('--socket <path>', "the agent's status socket", '/run/weft/agent.sock')
  .action(async (o: { socket: string }) => {
    const { agentRequest } = await import('../agent/client.js');
    const r = await agentRequest(o.socket, '/leave', 'POST');
    process.stdout.write(r.body);
    process.exitCode = r.code === 200 ? 0 : 1;
  });

program
  .command('hand-back-to-flannel')
  .description(
    'rollback, with the agent stopped (--keep-data-path): weft.<VNI> becomes flannel.<VNI> again for flanneld to reuse',
  )
  .option('--finish', "once flanneld is up: remove weft's nftables table")
  .action(async (o: { finish?: boolean }) => {
    const { handBackToFlannel } = await import('../agent/takeover.js');
    const { TrafficManager } = await import('../agent/traffic.js');
    const { createLogger } = await import('../util/log.js');
    const log = createLogger({ level: 'warn' });
    const lines = await handBackToFlannel({
      finish: o.finish === true,
      removeWeftRules: () => new TrafficManager(log).remove(),
      log,
    });
    // Flannel's data path has no BPF: weft's fast path (fed by no agent any more) goes now.
    const { removeFastPath } = await import('../fastpath/datapath.js');
    const detached = o.finish ? 0 : await removeFastPath(log, 'removed (handed back to Flannel)');
    if (detached > 0) lines.unshift(`removed weft's BPF fast path (${detached} programs detached)`);
    process.stdout.write(lines.join('\n') + '\n');
  });

program
  .command('install-cni')
  .description(
    'install weft-cni on this host: the plugin into --dir, its network config list into --conf-dir (atomic, idempotent)',
  )
  .option('--dir <path>', 'CNI plugin directory', '/opt/cni/bin')
  .option('--conf-dir <path>', 'CNI network configuration directory', '/etc/cni/net.d')
  .option('--conf-name <file>', 'file name of the conflist', '10-weft.conflist')
  .option('--network <name>', 'network name in the conflist', 'weft')
  .option('--subnet-file <path>', "the agent's subnet file, if not /run/flannel/subnet.env")
  .action(
    async (o: { dir: string; confDir: string; confName: string; network: string; subnetFile?: string }) => {
      const { runInstallCni } = await import('./install-cni-command.js');
      runInstallCni(o);
    },
  );

const { registerLab } = await import('./lab-command.js');
registerLab(program);
const { registerBench } = await import('./bench-command.js');
registerBench(program);
const { registerCloudRoutes } = await import('./cloud-routes-command.js');
registerCloudRoutes(program);
const { registerTrace } = await import('./trace-command.js');
registerTrace(program);
const { registerDemo } = await import('./demo-command.js');
registerDemo(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  process.stderr.write(`weft: ${describeError(err)}\n`);
  process.exit(1);
}
