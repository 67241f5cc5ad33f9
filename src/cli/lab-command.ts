import { constants } from 'node:os';
import type { Command } from 'commander';
import { BACKEND_TYPES, type BackendType } from '../config/network-config.js';
import { WeftError } from '../util/errors.js';
import { formatTable } from '../util/table.js';
import { registerLabServices } from './lab-services-command.js';
import { onlyLab } from './only-lab.js';

/** `weft lab up|down|status|exec|backend|node|pod|agent`: a thin layer over src/lab. */
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
      'lab spec (keys mirror these flags: name, nodes, podsPerNode, underlay, backend, …) or a Magnum cluster template',
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
    .option('--fast-path <mode>', 'the BPF fast path in the network config: none | bpf | auto')
    .option('--json', 'print the lab status as JSON when up')
    .action(async (o: Record<string, string | boolean | undefined>) => {
      const { loadSpecFile, validateSpec } = await import('../lab/spec.js');
      const { labUp, labStatus } = await import('../lab/lab.js');
      let fromFile = typeof o.file === 'string' ? await loadSpecFile(o.file) : {};
      const magnum = await import('../lab/magnum.js');
      if (magnum.isMagnumTemplate(fromFile)) {
        const c = magnum.convertMagnumTemplate(fromFile);
        process.stdout.write(magnum.formatMagnumMapping(c) + '\n');
        fromFile = c.spec;
      }
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
        fastPath: 'fastPath',
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
      const { describeLiveness } = await import('../lab/agents.js');
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
        ['NODE', 'NETNS', 'PUBLIC IP', 'SUBNET', 'AGENT', 'PID', 'READY'],
        ...s.nodes.map((n) => [
          n.name,
          n.netns,
          n.publicIP,
          n.subnet ?? '-',
          describeLiveness(n.agent),
          String(n.agent.pid || '-'),
          n.ready ? 'yes' : `no (${n.readiness.replace(/^not ready: /, '')})`,
        ]),
      ];
      const pods = [['POD', 'NODE', 'NETNS', 'IP'], ...s.pods.map((p) => [p.name, p.node, p.netns, p.ip])];
      process.stdout.write(
        `lab ${s.name}: underlay ${s.underlay}, backend ${s.backend}${s.fastPath === 'none' ? '' : ` + BPF fast path (${s.fastPath})`}, etcd ${s.etcd.endpoints.join(',')} (netns ${s.etcd.netns ?? 'root'})\n\n${formatTable(rows)}\n${formatTable(pods)}`,
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
    .option('--fast-path <mode>', 'also switch the BPF fast path: none | bpf | auto')
    .option(
      '--address-pairs',
      "host-gw on a neutron lab: the talk's 2016 fix, an address pair for its pod subnet on every node port (no router routes)",
    )
    .action(async (type: string, o: { name?: string; fastPath?: string; addressPairs?: boolean }) => {
      if (!(BACKEND_TYPES as readonly string[]).includes(type))
        throw new WeftError(`unknown backend "${type}"`, { hint: `use ${BACKEND_TYPES.join(', ')}` });
      const { isFastPathMode, FAST_PATH_MODES } = await import('../config/fast-path-mode.js');
      if (o.fastPath !== undefined && !isFastPathMode(o.fastPath))
        throw new WeftError(`unknown fast path "${o.fastPath}"`, {
          hint: `use ${FAST_PATH_MODES.join(', ')}`,
        });
      const { labSwitchBackend } = await import('../lab/lab.js');
      await labSwitchBackend(o.name ?? (await onlyLab()), type as BackendType, say, {
        fastPath: o.fastPath,
        addressPairs: o.addressPairs === true,
      });
    });
  registerLifecycle(lab, say);
  registerLabServices(lab);
}

/** `weft lab node add|remove`, `weft lab pod add|del`, `weft lab agent kill|restart`: a running lab's parts. */
function registerLifecycle(lab: Command, say: (m: string) => void): void {
  const labName = async (o: { name?: string }) => o.name ?? (await onlyLab());
  const node = lab.command('node').description("add or remove a running lab's nodes");
  node
    .command('add')
    .description("add a node: namespace on the underlay, an agent, pods (--pods, default the spec's)")
    .option('--name <name>', 'lab name (default: the only lab)')
    .option('--pods <n>', 'pods to attach once its agent is ready')
    .action(async (o: { name?: string; pods?: string }) => {
      const { labAddNode } = await import('../lab/nodes.js');
      const n = await labAddNode(await labName(o), {
        ...(o.pods !== undefined && { pods: count(o.pods) }),
        progress: say,
      });
      say(`node ${n.name} (${n.publicIP}) joined; its agent is ready and every node reaches it`);
    });
  node
    .command('remove')
    .description('remove a node: its pods detached, its agent leaves the cluster, its namespace removed')
    .argument('<node>', 'node name (n1, …)')
    .option('--name <name>', 'lab name (default: the only lab)')
    .action(async (nodeName: string, o: { name?: string }) => {
      const { labRemoveNode } = await import('../lab/nodes.js');
      await labRemoveNode(await labName(o), nodeName, say);
    });

  const pod = lab.command('pod').description("attach or detach a running lab's pods (through weft-cni)");
  pod
    .command('add')
    .description('create pods on a node and attach them through weft-cni (CNI ADD)')
    .argument('<node>', 'node name (n1, …)')
    .option('--name <name>', 'lab name (default: the only lab)')
    .option('--count <n>', 'how many', '1')
    .action(async (nodeName: string, o: { name?: string; count: string }) => {
      const { labAttachPods } = await import('../lab/pods.js');
      for (const p of await labAttachPods(await labName(o), nodeName, count(o.count)))
        say(`pod ${p.name} on ${p.node}: ${p.ip}`);
    });
  pod
    .command('del')
    .description('detach a pod through weft-cni (CNI DEL) and remove its namespace')
    .argument('<pod>', 'pod name (n1p1, …)')
    .option('--name <name>', 'lab name (default: the only lab)')
    .action(async (podName: string, o: { name?: string }) => {
      const { labDetachPod } = await import('../lab/pods.js');
      await labDetachPod(await labName(o), podName);
      say(`pod ${podName} detached and removed`);
    });

  const agent = lab.command('agent').description("end or restart a lab node's agent");
  agent
    .command('kill')
    .description('end the agent with a signal (default KILL: a crash; TERM: a clean stop)')
    .argument('<node>', 'node name (n1, …)')
    .option('--name <name>', 'lab name (default: the only lab)')
    .option('--signal <sig>', 'KILL, TERM, INT, …', 'KILL')
    .action(async (nodeName: string, o: { name?: string; signal: string }) => {
      const { labKillAgent } = await import('../lab/agents.js');
      await labKillAgent(await labName(o), nodeName, signalOf(o.signal));
      say(`agent on ${nodeName} ended with SIG${o.signal.replace(/^SIG/i, '').toUpperCase()}`);
    });
  agent
    .command('restart')
    .description(
      'end the agent if it runs (default KILL: it leaves the data path as it is), start it again, wait until it is ready',
    )
    .argument('<node>', 'node name (n1, …)')
    .option('--name <name>', 'lab name (default: the only lab)')
    .option('--signal <sig>', 'how to end it: KILL, or TERM for a clean stop first', 'KILL')
    .action(async (nodeName: string, o: { name?: string; signal: string }) => {
      const { labRestartAgent } = await import('../lab/agents.js');
      const n = await labRestartAgent(await labName(o), nodeName, { signal: signalOf(o.signal) });
      say(`agent on ${nodeName} restarted (pid ${n.agentPid}) and ready`);
    });
}

function count(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 50)
    throw new WeftError(`expected a number of pods between 0 and 50, got "${v}"`);
  return n;
}

function signalOf(v: string): NodeJS.Signals {
  const name = `SIG${v.replace(/^SIG/i, '').toUpperCase()}`;
  if (!(name in constants.signals))
    throw new WeftError(`unknown signal "${v}"`, { hint: 'e.g. KILL, TERM, INT, HUP' });
  return name as NodeJS.Signals;
}
