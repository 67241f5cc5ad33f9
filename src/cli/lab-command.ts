import type { Command } from 'commander';
import { BACKEND_TYPES, type BackendType } from '../config/network-config.js';
import { WeftError } from '../util/errors.js';
import { formatTable } from '../util/table.js';

/** `weft lab up|down|status|exec|backend`: a thin layer over src/lab. */
export function registerLab(program: Command): void {
  const lab = program
    .command('lab')
    .description('build, inspect and remove whole clusters on this machine (namespaces only)');
  const say = (m: string) => process.stderr.write(`[lab] ${m}\n`);

  lab
    .command('up')
    .description('build a cluster: underlay, etcd, an agent per node, pods attached by weft-cni')
    .option(
      '-f, --file <spec.yaml>',
      'lab spec (keys mirror these flags: name, nodes, podsPerNode, underlay, backend, …)',
    )
    .option('--name <name>', 'lab name (1-8 lowercase letters/digits)')
    .option('--nodes <n>', 'number of nodes')
    .option('--pods-per-node <n>', 'pods per node')
    .option('--underlay <kind>', 'flat | routed | neutron')
    .option('--backend <type>', BACKEND_TYPES.join(' | '))
    .option('--network <cidr>', 'pod network')
    .option('--mtu <bytes>', 'underlay MTU')
    .option('--lease-ttl <seconds>', "agents' subnet lease TTL")
    .option('--resync <seconds>', "agents' reconcile period")
    .option('--no-ip-masq', 'do not masquerade pod egress')
    .option('--json', 'print the lab status as JSON when up')
    .action(async (o: Record<string, string | boolean | undefined>) => {
      const { loadSpecFile, validateSpec } = await import('../lab/spec.js');
      const { labUp, labStatus } = await import('../lab/lab.js');
      const fromFile = typeof o.file === 'string' ? await loadSpecFile(o.file) : {};
      const flags: Record<string, unknown> = {};
      const map: Record<string, string> = {
        name: 'name',
        nodes: 'nodes',
        podsPerNode: 'podsPerNode',
        underlay: 'underlay',
        backend: 'backend',
        network: 'network',
        mtu: 'mtu',
        leaseTtl: 'leaseTtl',
        resync: 'resync',
      };
      for (const [flag, key] of Object.entries(map)) if (o[flag] !== undefined) flags[key] = o[flag];
      if (o.ipMasq === false) flags.ipMasq = false;
      const spec = validateSpec({ name: 'demo', ...fromFile, ...flags });
      const state = await labUp(spec, say);
      if (o.json) process.stdout.write(JSON.stringify(await labStatus(state.name), null, 2) + '\n');
    });

  lab
    .command('down')
    .description('remove everything a lab made (also after a failed up)')
    .option('--name <name>', 'lab name (default: the only lab)')
    .option('--all', 'remove every lab on this machine')
    .action(async (o: { name?: string; all?: boolean }) => {
      const { labDown, listLabs } = await import('../lab/lab.js');
      const names = o.all ? await listLabs() : [o.name ?? (await onlyLab())];
      for (const n of names) await labDown(n, say);
    });

  lab
    .command('status')
    .description('show a lab: nodes, subnets, agents, pods')
    .option('--name <name>', 'lab name (default: the only lab)')
    .option('--json', 'print JSON')
    .action(async (o: { name?: string; json?: boolean }) => {
      const { labStatus, listLabs } = await import('../lab/lab.js');
      const labs = await listLabs();
      if (!o.name && labs.length !== 1) {
        if (o.json) process.stdout.write(JSON.stringify({ labs }) + '\n');
        else process.stdout.write(labs.length === 0 ? 'no labs\n' : `labs: ${labs.join(' ')}\n`);
        return;
      }
      const s = await labStatus(o.name ?? labs[0]!);
      if (o.json) {
        process.stdout.write(JSON.stringify(s, null, 2) + '\n');
        return;
      }
      const rows = [
        ['NODE', 'NETNS', 'PUBLIC IP', 'SUBNET', 'AGENT PID', 'READY'],
        ...s.nodes.map((n) => [
          n.name,
          n.netns,
          n.publicIP,
          n.subnet ?? '-',
          String(n.agentPid),
          n.ready ? 'yes' : 'no',
        ]),
      ];
      const pods = [['POD', 'NODE', 'NETNS', 'IP'], ...s.pods.map((p) => [p.name, p.node, p.netns, p.ip])];
      process.stdout.write(
        `lab ${s.name}: underlay ${s.underlay}, backend ${s.backend}, etcd ${s.etcd.endpoints.join(',')} (netns ${s.etcd.netns ?? 'root'})\n\n${formatTable(rows)}\n${formatTable(pods)}`,
      );
    });

  lab
    .command('exec')
    .description("run a command in a node, a pod, or the lab's etcd/gw/ext host")
    .argument('<target>', 'node (n1), pod (n1p1), etcd, gw or ext')
    .argument('<cmd...>', 'the command, after --')
    .option('--name <name>', 'lab name (default: the only lab)')
    .action(async (target: string, cmd: string[], o: { name?: string }) => {
      const { readState, resolveTarget } = await import('../lab/lab.js');
      const s = await readState(o.name ?? (await onlyLab()));
      const ns = resolveTarget(s, target);
      const { execInteractive } = await import('../kernel/netns.js');
      process.exitCode = execInteractive(ns, cmd);
    });

  lab
    .command('backend')
    .description("switch a running lab's backend and wait until the data path is ready")
    .argument('<type>', BACKEND_TYPES.join(' | '))
    .option('--name <name>', 'lab name (default: the only lab)')
    .action(async (type: string, o: { name?: string }) => {
      if (!(BACKEND_TYPES as readonly string[]).includes(type))
        throw new WeftError(`unknown backend "${type}"`, { hint: `use ${BACKEND_TYPES.join(', ')}` });
      const { labSwitchBackend } = await import('../lab/lab.js');
      await labSwitchBackend(o.name ?? (await onlyLab()), type as BackendType, say);
    });
}

/** The lab a command means when --name is not given: the only one up, else a clear error. */
export async function onlyLab(): Promise<string> {
  const { listLabs } = await import('../lab/lab.js');
  const labs = await listLabs();
  if (labs.length === 1) return labs[0]!;
  throw new WeftError(labs.length === 0 ? 'no lab is up' : `several labs are up (${labs.join(', ')})`, {
    hint: labs.length === 0 ? 'weft lab up --name NAME' : 'pass --name',
  });
}
