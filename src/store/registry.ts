import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import { Etcd3, type IOptions } from 'etcd3';
import { WeftError } from '../util/errors.js';
import { Cidr } from '../util/ipv4.js';
import {
  configKey,
  parseLease,
  subnetKey,
  subnetsPrefix,
  type Lease,
  type LeaseAttrs,
  LeaseParseError,
} from './lease.js';

/**
 * etcd v3 access for the Flannel keyspace: config, leases (compare-and-swap), watch. Knows the key and
 * value formats; knows nothing about allocation policy (that is the lease manager's).
 */
export interface CorruptEntry {
  key: string;
  reason: string;
}

export interface Listing {
  leases: Lease[];
  corrupt: CorruptEntry[];
  /** The store revision the listing was read at; a watch resumes from revision + 1. */
  revision: string;
}

export type WatchEvent =
  | { type: 'put'; lease: Lease }
  | { type: 'delete'; subnet: Cidr; key: string }
  | { type: 'corrupt'; entry: CorruptEntry };

export interface WatchHandlers {
  onEvents(events: WatchEvent[], revision: string): void;
  /** The watch was cancelled (e.g. its revision was compacted): the caller must re-list and re-watch. */
  onLost(reason: string): void;
  onDisconnected?(reason: string): void;
  onConnected?(): void;
}

type Backoff = NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']>;

/** Watch reconnect backoff: 100 ms doubling to 2 s, so that the agent catches up quickly after an etcd outage. */
function watchBackoff(ms = 100): Backoff {
  return { duration: ms, next: () => watchBackoff(Math.min(ms * 2, 2000)) } as Backoff;
}

/**
 * How the agent proves itself to etcd, as flanneld does: TLS with a CA and a client certificate
 * (--etcd-cafile/--etcd-certfile/--etcd-keyfile) and/or a user (--etcd-username/--etcd-password).
 * Without them anyone who reaches etcd can rewrite the leases.
 */
export interface EtcdSecurity {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  username?: string;
  password?: string;
}

function readPem(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new WeftError(`cannot read ${flag} ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, {
      hint: `give ${flag} a readable PEM file`,
    });
  }
}

/** The etcd3 client options for the given security settings; throws a WeftError on an unusable setting. */
export function etcdClientSecurity(
  endpoints: string[],
  sec: EtcdSecurity = {},
): Pick<IOptions, 'credentials' | 'auth'> {
  const out: Pick<IOptions, 'credentials' | 'auth'> = {};
  if ((sec.certFile === undefined) !== (sec.keyFile === undefined)) {
    throw new WeftError('--etcd-certfile and --etcd-keyfile go together', {
      hint: 'give both (the client certificate and its key) or neither',
    });
  }
  if (sec.caFile !== undefined || sec.certFile !== undefined) {
    const plain = endpoints.filter((e) => !e.startsWith('https://'));
    if (plain.length > 0) {
      throw new WeftError(`etcd TLS files were given but ${plain.join(',')} is not https://`, {
        hint: 'use https:// endpoints with --etcd-cafile/--etcd-certfile/--etcd-keyfile',
      });
    }
    out.credentials = {
      // No --etcd-cafile: the system's roots, as Go's TLS client does.
      rootCertificate:
        sec.caFile !== undefined
          ? readPem('--etcd-cafile', sec.caFile)
          : Buffer.from(rootCertificates.join('\n')),
      ...(sec.certFile !== undefined && { certChain: readPem('--etcd-certfile', sec.certFile) }),
      ...(sec.keyFile !== undefined && { privateKey: readPem('--etcd-keyfile', sec.keyFile) }),
    };
  }
  if ((sec.username === undefined) !== (sec.password === undefined)) {
    throw new WeftError('--etcd-username and --etcd-password go together', { hint: 'give both or neither' });
  }
  if (sec.username !== undefined) out.auth = { username: sec.username, password: sec.password! };
  return out;
}

/** flanneld's warning for an endpoint without TLS; undefined for https://. */
export function plainEtcdWarning(endpoint: string): string | undefined {
  return endpoint.startsWith('https://')
    ? undefined
    : `etcd endpoint ${endpoint} is plain HTTP: leases travel unencrypted and anyone who reaches it can rewrite them (use https:// with --etcd-cafile/--etcd-certfile/--etcd-keyfile)`;
}

const CLIENT_CERT_REJECTED =
  /alert (?:bad certificate|certificate required|unknown ca|handshake failure)|SSL alert number (?:40|42|48|116)\b/i;
const SERVER_CERT_UNTRUSTED =
  /unable to verify the first certificate|self[- ]signed certificate(?: in certificate chain)?|certificate has expired|unable to get (?:local )?issuer certificate|Hostname\/IP does not match certificate's altnames/i;

/**
 * The cause of an etcd failure that is about who this agent is (TLS trust, client certificate, user),
 * as a line naming the fix; undefined for anything else (unreachable, timeouts: transient).
 */
export function etcdSecurityProblem(err: unknown, endpoints: string[]): string | undefined {
  const m = err instanceof Error ? err.message : String(err);
  const at = `etcd at ${endpoints.join(',')}`;
  if (CLIENT_CERT_REJECTED.test(m))
    return `${at} rejected this agent's TLS client certificate (none given, or not signed by the CA etcd trusts): pass --etcd-certfile and --etcd-keyfile`;
  const untrusted = SERVER_CERT_UNTRUSTED.exec(m);
  if (untrusted)
    return `${at} presented a TLS certificate this agent does not trust (${untrusted[0]}): pass the CA that signed it with --etcd-cafile`;
  if (/wrong version number|packet length too long/i.test(m))
    return `${at} does not answer TLS: use its http:// URL, or enable TLS on etcd`;
  if (/user name is empty/i.test(m)) return `${at} requires a user: pass --etcd-username and --etcd-password`;
  if (/authentication failed|invalid user ID or password/i.test(m))
    return `${at} refused the user and password: check --etcd-username and --etcd-password`;
  if (/permission denied/i.test(m))
    return `${at}: the etcd user may not use the key prefix (permission denied): grant its role readwrite on --etcd-prefix`;
  return undefined;
}

export function connectEtcd(endpoints: string[], security?: EtcdSecurity): Etcd3 {
  return new Etcd3({
    hosts: endpoints,
    dialTimeout: 3000,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 5000 }),
    faultHandling: { watchBackoff: watchBackoff() },
    ...etcdClientSecurity(endpoints, security),
  });
}

/**
 * One read with a short deadline: throws a WeftError when etcd rejects who this agent is (TLS,
 * certificate, user); any other outcome (answered, unreachable) is left to the caller's retries.
 */
export async function checkEtcdAccess(
  endpoints: string[],
  prefix: string,
  security?: EtcdSecurity,
): Promise<void> {
  const client = connectEtcd(endpoints, security);
  try {
    await client.get(configKey(prefix.replace(/\/+$/, ''))).string(); // a key the agent may read
  } catch (err) {
    const problem = etcdSecurityProblem(err, endpoints);
    if (problem) throw new WeftError(problem);
  } finally {
    client.close();
  }
}

const str = (b: Buffer | string): string => (typeof b === 'string' ? b : b.toString('utf8'));

export class SubnetRegistry {
  readonly client: Etcd3;
  readonly prefix: string;

  constructor(client: Etcd3, prefix: string) {
    this.client = client;
    this.prefix = prefix.replace(/\/+$/, '');
  }

  async getConfigText(): Promise<string | undefined> {
    return (await this.client.get(configKey(this.prefix)).string()) ?? undefined;
  }

  async putConfigText(text: string): Promise<void> {
    await this.client.put(configKey(this.prefix)).value(text);
  }

  async list(): Promise<Listing> {
    const res = await this.client.getAll().prefix(subnetsPrefix(this.prefix)).exec();
    const leases: Lease[] = [];
    const corrupt: CorruptEntry[] = [];
    for (const kv of res.kvs) {
      const key = str(kv.key);
      try {
        leases.push(parseLease(key, str(kv.value), String(kv.lease), String(kv.mod_revision)));
      } catch (e) {
        if (!(e instanceof LeaseParseError)) throw e;
        corrupt.push({ key, reason: e.message });
      }
    }
    return { leases, corrupt, revision: String(res.header.revision) };
  }

  async grant(ttlSeconds: number): Promise<string> {
    const r = await this.client.leaseClient.leaseGrant({ TTL: ttlSeconds, ID: 0 });
    return String(r.ID);
  }

  async revoke(leaseId: string): Promise<void> {
    if (leaseId === '0') return;
    await this.client.leaseClient.leaseRevoke({ ID: leaseId }).catch(() => undefined);
  }

  /** Seconds left on an etcd lease; -1 when it has expired or does not exist. */
  async ttlLeft(leaseId: string): Promise<number> {
    const r = await this.client.leaseClient.leaseTimeToLive({ ID: leaseId, keys: false });
    return Number(r.TTL);
  }

  /**
   * Writes a lease for `subnet` only if the key does not exist (create) or still has `expectRevision`
   * (rewrite). Returns the new lease, or undefined when someone else won the race.
   */
  async casPut(
    subnet: Cidr,
    attrs: LeaseAttrs,
    leaseId: string,
    expectRevision: string | undefined,
  ): Promise<Lease | undefined> {
    const key = subnetKey(this.prefix, subnet);
    const put = this.client.put(key).value(JSON.stringify(attrs));
    if (leaseId !== '0') put.lease(leaseId);
    const txn =
      expectRevision === undefined
        ? this.client.if(key, 'Version', '==', 0)
        : this.client.if(key, 'Mod', '==', expectRevision);
    const res = await txn.then(put).commit();
    if (!res.succeeded) return undefined;
    return { subnet, attrs, leaseId, modRevision: String(res.header.revision) };
  }

  /** Deletes a lease key only if it is unchanged since it was read. */
  async casDelete(lease: Lease): Promise<boolean> {
    const key = subnetKey(this.prefix, lease.subnet);
    const res = await this.client
      .if(key, 'Mod', '==', lease.modRevision)
      .then(this.client.delete().key(key))
      .commit();
    return res.succeeded;
  }

  /** Watches the subnets prefix from `fromRevision`. Returns a function that stops the watch. */
  async watch(fromRevision: string, h: WatchHandlers): Promise<() => Promise<void>> {
    const watcher = await this.client
      .watch()
      .prefix(subnetsPrefix(this.prefix))
      .startRevision(fromRevision)
      .create();
    watcher.on('data', (res) => {
      const events: WatchEvent[] = [];
      for (const ev of res.events) {
        const key = str(ev.kv.key);
        if (ev.type === 'Delete') {
          const subnet = Cidr.fromKey(key);
          if (subnet) events.push({ type: 'delete', subnet, key });
          continue;
        }
        try {
          events.push({
            type: 'put',
            lease: parseLease(key, str(ev.kv.value), String(ev.kv.lease), String(ev.kv.mod_revision)),
          });
        } catch (e) {
          if (!(e instanceof LeaseParseError)) throw e;
          events.push({ type: 'corrupt', entry: { key, reason: e.message } });
        }
      }
      if (events.length > 0) h.onEvents(events, String(res.header.revision));
    });
    watcher.on('error', (err: Error) => h.onLost(err.message));
    watcher.on('disconnected', (err: Error) => h.onDisconnected?.(err.message));
    watcher.on('connected', () => h.onConnected?.());
    return async () => {
      watcher.removeAllListeners();
      watcher.on('error', () => undefined);
      await watcher.cancel().catch(() => undefined);
    };
  }

  /** True when etcd answers a read within `timeoutMs`. */
  async healthy(timeoutMs = 2000): Promise<boolean> {
    try {
      await this.client
        .get(configKey(this.prefix))
        .options({ deadline: Date.now() + timeoutMs })
        .string();
      return true;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    this.client.close();
  }
}
