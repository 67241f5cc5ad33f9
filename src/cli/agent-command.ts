import { Agent } from '../agent/agent.js';
import { sdNotify } from '../agent/sd-notify.js';
import { checkEtcdAccess, plainEtcdWarning, type EtcdSecurity } from '../store/registry.js';
import { createLogger, type LogLevel } from '../util/log.js';
import { describeError } from '../util/errors.js';
import type { FastPathMode } from '../config/fast-path-mode.js';

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
  const etcdEndpoints = (s('etcdEndpoints') ?? '').split(',').filter(Boolean);
  const etcdSecurity: EtcdSecurity = {
    ...(s('etcdCafile') !== undefined && { caFile: s('etcdCafile') }),
    ...(s('etcdCertfile') !== undefined && { certFile: s('etcdCertfile') }),
    ...(s('etcdKeyfile') !== undefined && { keyFile: s('etcdKeyfile') }),
    ...(s('etcdUsername') !== undefined && { username: s('etcdUsername') }),
    ...(s('etcdPassword') !== undefined && { password: s('etcdPassword') }),
  };
  for (const e of etcdEndpoints) {
    const w = plainEtcdWarning(e);
    if (w) log.warn(w);
  }
  quietTlsServerNameWarning();
  // Who this agent is to etcd (certificates, user) is settled before anything else: a rejection is a
  // configuration error, reported in one line; an etcd that is down is retried by the agent as always.
  try {
    await checkEtcdAccess(etcdEndpoints, s('etcdPrefix') ?? '/coreos.com/network', etcdSecurity);
  } catch (err) {
    fail(describeError(err));
  }
  const agent = new Agent({
    etcdEndpoints,
    etcdPrefix: s('etcdPrefix') ?? '/coreos.com/network',
    etcdSecurity,
    ifaces: (o.iface as string[] | undefined) ?? [],
    ifaceRegex: (o.ifaceRegex as string[] | undefined) ?? [],
    ifaceCanReach: s('ifaceCanReach'),
    publicIp: s('publicIp'),
    subnetFile: s('subnetFile') ?? '/run/flannel/subnet.env',
    ipMasq: o.ipMasq === true,
    leaseTtlSeconds: num('subnetLeaseTtl'),
    renewMarginSeconds: num('subnetLeaseRenewMargin') * 60,
    resyncSeconds: num('resync'),
    healthzAddr: s('healthzAddr'),
    statusOnTcp: o.statusOnTcp === true,
    statusSocket: s('statusSocket'),
    cniServer: o.cniServer !== false,
    cloud: { cloud: s('cloud'), configFile: s('cloudConfig'), cluster: s('clusterName') ?? 'weft' },
    cloudResyncSeconds: num('cloudResync'),
    takeOverFlannel: o.takeOverFlannel === true,
    keepDataPath: o.keepDataPath === true,
    fastPath: s('fastPath') as FastPathMode | undefined, // one of FAST_PATH_MODES (the option's choices)
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
    notify('STOPPING=1');
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
  // start() resolves once the lease is held, subnet.env written and the data path programmed.
  if (notify('READY=1')) log.info('told systemd the agent is ready');

  function notify(state: string): boolean {
    try {
      return sdNotify(state);
    } catch (err) {
      log.warn(`cannot tell systemd ${state}: ${describeError(err)}`);
      return false;
    }
  }
}

/**
 * grpc-js names the TLS server by the endpoint's host, an IP address for most etcd clusters, and Node
 * warns (DEP0123) on every connection: noise for an operator, the certificate is still checked.
 */
function quietTlsServerNameWarning(): void {
  const emit = process.emitWarning.bind(process) as (...a: unknown[]) => void;
  process.emitWarning = ((...args: unknown[]) => {
    const opts = args[1];
    const code = typeof opts === 'object' && opts !== null ? (opts as { code?: unknown }).code : args[2];
    if (code !== 'DEP0123') emit(...args);
  }) as typeof process.emitWarning;
}

function fail(line: string): never {
  process.stderr.write(`weft agent: ${line}\n`);
  process.exit(1);
}
