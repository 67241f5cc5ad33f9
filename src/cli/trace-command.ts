import type { Command } from 'commander';
import { WeftError } from '../util/errors.js';
import { onlyLab } from './only-lab.js';

/** `weft trace` (a probe through a lab, hop by hop) and `weft trace-node` (the node-local half, raw). */
export function registerTrace(program: Command): void {
  program
    .command('trace')
    .description(
      'send one probe and follow it and its reply through every device, namespace, NAT and rule on the way',
    )
    .argument('<from>', 'pod, node or ext')
    .argument('<to>', 'pod, node, pod IP, service name or ClusterIP, or ext')
    .option('--name <name>', 'lab name (default: the only lab)')
    .option('--port <port>', 'destination port (tcp/udp; a service gives its own)')
    .option('--proto <proto>', 'icmp | tcp | udp (default: icmp, or the service protocol)')
    .option('--timeout <ms>', 'how long to wait for the reply', '1500')
    .option('--no-netfilter', 'do not trace netfilter rules (their tracing adds time to hops in nodes)')
    .option('--json', 'print the trace as JSON')
    .option('--html <file>', 'also write a self-contained HTML sequence diagram')
    .action(
      async (
        from: string,
        to: string,
        o: {
          name?: string;
          port?: string;
          proto?: string;
          timeout: string;
          netfilter: boolean;
          json?: boolean;
          html?: string;
        },
      ) => {
        if (o.proto !== undefined && !['icmp', 'tcp', 'udp'].includes(o.proto))
          throw new WeftError(`--proto: use icmp, tcp or udp, not "${o.proto}"`);
        const { labTrace } = await import('../trace/run.js');
        const t = await labTrace(o.name ?? (await onlyLab()), from, to, {
          ...(o.proto && { proto: o.proto as 'icmp' | 'tcp' | 'udp' }),
          ...(o.port !== undefined && { port: Number(o.port) }),
          timeoutMs: Number(o.timeout),
          netfilter: o.netfilter,
        });
        if (o.html) {
          const { writeFile } = await import('node:fs/promises');
          const { traceHtml } = await import('../trace/html.js');
          await writeFile(o.html, traceHtml(t));
        }
        if (o.json) process.stdout.write(JSON.stringify(t, null, 2) + '\n');
        else process.stdout.write((await import('../trace/text.js')).traceText(t));
        process.exitCode = t.summary.verdict === 'delivered' ? 0 : 2;
      },
    );

  program
    .command('trace-node')
    .description(
      "the node-local half of weft trace, for one host of a real cluster: watch this host's namespaces for a probe and print what the kernel saw as JSON lines",
    )
    .requiredOption(
      '--netns <names>',
      'namespaces to watch, comma-separated (names under /run/netns, or paths)',
    )
    .requiredOption('--proto <proto>', 'icmp | tcp | udp')
    .requiredOption('--dst <ip>', "the probe's destination")
    .option('--dport <port>', "the probe's destination port (tcp, udp)", '0')
    .option('--sport <port>', "the probe's source port or ICMP id (as the sending host chose it)")
    .option('--sig <hex>', "the probe's 16-byte payload signature (hex), as the sending host chose it")
    .option('--nft <names>', 'namespaces to trace nftables rules in, comma-separated')
    .option('--send-from <netns>', 'send the probe from this namespace (this host is the sender)')
    .option('--duration <ms>', 'how long to watch', '3000')
    .action(
      async (o: {
        netns: string;
        proto: string;
        dst: string;
        dport: string;
        sport?: string;
        sig?: string;
        nft?: string;
        sendFrom?: string;
        duration: string;
      }) => {
        const { traceNode } = await import('../trace/node.js');
        await traceNode({
          netns: o.netns.split(',').filter(Boolean),
          proto: o.proto as 'icmp' | 'tcp' | 'udp',
          dst: o.dst,
          dport: Number(o.dport),
          ...(o.sport !== undefined && { sport: Number(o.sport) }),
          ...(o.sig !== undefined && { sig: o.sig }),
          nft: (o.nft ?? '').split(',').filter(Boolean),
          ...(o.sendFrom !== undefined && { sendFrom: o.sendFrom }),
          durationMs: Number(o.duration),
        });
      },
    );
}
