import { Agent } from '../agent/agent.js';
import { createLogger, type LogLevel } from '../util/log.js';
import { describeError } from '../util/errors.js';

/** `weft agent`: runs until SIGTERM/SIGINT; a fatal start-up problem is one line on stderr and exit 1. */
export async function runAgent(o: Record<string, string | string[] | boolean | undefined>): Promise<void> {
  const s = (k: string) => (typeof o[k] === 'string' ? (o[k] as string) : undefined);
  const num = (k: string): number => {
    const v = Number(s(k));
    if (!Number.isFinite(v) || v <= 0)
      fail(`--${k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}: "${s(k)}" is not a positive number`);
    return v;
  };
  const log = createLogger({ level: (s('logLevel') ?? 'info') as LogLevel });
  const agent = new Agent({
    etcdEndpoints: (s('etcdEndpoints') ?? '').split(',').filter(Boolean),
    etcdPrefix: s('etcdPrefix') ?? '/coreos.com/network',
    ifaces: (o.iface as string[] | undefined) ?? [],
    publicIp: s('publicIp'),
    subnetFile: s('subnetFile') ?? '/run/flannel/subnet.env',
    ipMasq: o.ipMasq === true,
    leaseTtlSeconds: num('subnetLeaseTtl'),
    renewMarginSeconds: num('subnetLeaseRenewMargin') * 60,
    resyncSeconds: num('resync'),
    healthzAddr: s('healthzAddr'),
    statusSocket: s('statusSocket'),
    cniServer: o.cniServer !== false,
    cloud: { cloud: s('cloud'), configFile: s('cloudConfig'), cluster: s('clusterName') ?? 'weft' },
    cloudResyncSeconds: num('cloudResync'),
    takeOverFlannel: o.takeOverFlannel === true,
    keepDataPath: o.keepDataPath === true,
    onLeft: () => {
      log.info('left the cluster');
      process.exit(0);
    },
    log,
  });
  let stopping = false;
  const stop = (sig: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal: sig }, 'shutting down');
    void agent.stop().then(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  try {
    await agent.start();
  } catch (err) {
    log.fatal({ err: describeError(err) }, 'cannot start');
    fail(describeError(err));
  }
}

function fail(line: string): never {
  process.stderr.write(`weft agent: ${line}\n`);
  process.exit(1);
}
