import type { Command } from 'commander';
import { formatTable } from '../util/table.js';
import { onlyLab } from './only-lab.js';

/** `weft lab service add|del|list` and `weft lab serve`: Kubernetes services and responders in a lab. */
export function registerLabServices(lab: Command): void {
  const service = lab
    .command('service')
    .description("the lab's Kubernetes services (kube-proxy's nftables rules on every node)");
  const labName = async (o: { name?: string }) => o.name ?? (await onlyLab());

  service
    .command('add')
    .description('add a ClusterIP service (printed) routed to pods, optionally with a NodePort')
    .argument('<service>', 'service name')
    .requiredOption('--port <port>', 'service port')
    .option('--to <pods>', 'endpoint pods, comma-separated (none: the service rejects connections)', '')
    .option('--proto <proto>', 'tcp | udp', 'tcp')
    .option('--target-port <port>', 'port the pods listen on (default: the service port)')
    .option('--node-port <port>', 'also a NodePort (30000-32767) on every node')
    .option('--name <name>', 'lab name (default: the only lab)')
    .action(
      async (
        svc: string,
        o: { port: string; to: string; proto: string; targetPort?: string; nodePort?: string; name?: string },
      ) => {
        const { readState } = await import('../lab/lab.js');
        const { serviceAdd } = await import('../lab/services.js');
        const state = await readState(await labName(o));
        const s = await serviceAdd(state, {
          name: svc,
          port: Number(o.port),
          to: o.to.split(',').filter(Boolean),
          proto: o.proto as 'tcp' | 'udp',
          ...(o.targetPort !== undefined && { targetPort: Number(o.targetPort) }),
          ...(o.nodePort !== undefined && { nodePort: Number(o.nodePort) }),
        });
        process.stdout.write(`${s.vip}\n`);
        process.stderr.write(
          `[lab] service ${s.name}: ${s.vip}:${s.port}/${s.proto}${s.nodePort ? ` (node port ${s.nodePort})` : ''} → ${s.endpoints.join(', ') || 'no endpoints'}\n`,
        );
      },
    );

  service
    .command('del')
    .description('remove a service from every node')
    .argument('<service>', 'service name')
    .option('--name <name>', 'lab name (default: the only lab)')
    .action(async (svc: string, o: { name?: string }) => {
      const { readState } = await import('../lab/lab.js');
      const { serviceDel } = await import('../lab/services.js');
      await serviceDel(await readState(await labName(o)), svc);
    });

  service
    .command('list')
    .description("list the lab's services")
    .option('--name <name>', 'lab name (default: the only lab)')
    .option('--json', 'print JSON')
    .action(async (o: { name?: string; json?: boolean }) => {
      const { readServices, serviceStatus } = await import('../lab/services.js');
      const list = (await readServices(await labName(o))).map(serviceStatus);
      if (o.json) return void process.stdout.write(JSON.stringify(list, null, 2) + '\n');
      const rows = [
        ['SERVICE', 'CLUSTER-IP', 'PORT', 'NODE PORT', 'ENDPOINTS'],
        ...list.map((s) => [
          s.name,
          s.vip,
          `${s.port}/${s.proto}`,
          s.nodePort ? String(s.nodePort) : '-',
          s.endpoints.join(',') || '-',
        ]),
      ];
      process.stdout.write(list.length ? formatTable(rows) : 'no services\n');
    });

  lab
    .command('serve')
    .description('start a small echo/HTTP responder in a pod (stopped by `lab down`)')
    .argument('<pod>', 'pod name')
    .requiredOption('--port <port>', 'port to listen on')
    .option('--proto <proto>', 'tcp | udp | both', 'both')
    .option('--name <name>', 'lab name (default: the only lab)')
    .option('--foreground', 'run the responder here (inside the pod; used by the lab itself)')
    .action(async (pod: string, o: { port: string; proto: string; name?: string; foreground?: boolean }) => {
      const { WeftError } = await import('../util/errors.js');
      if (!['tcp', 'udp', 'both'].includes(o.proto))
        throw new WeftError(`--proto: use tcp, udp or both, not "${o.proto}"`);
      const opts = { port: Number(o.port), proto: o.proto as 'tcp' | 'udp' | 'both' };
      const { labServe, runResponder } = await import('../lab/serve.js');
      if (o.foreground) return runResponder(pod, opts);
      const { readState } = await import('../lab/lab.js');
      const pid = await labServe(await readState(await labName(o)), pod, opts);
      process.stderr.write(`[lab] ${pod} serves ${o.proto} port ${o.port} (pid ${pid})\n`);
    });
}
