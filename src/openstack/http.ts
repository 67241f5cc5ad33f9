/**
 * One HTTP(S) request, on node:http / node:https rather than the global fetch, because clouds.yaml's
 * `cacert`, `cert`/`key` and `verify: false` need per-request TLS options that fetch cannot take without
 * an extra dependency.
 */
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { CloudConfigError, OpenStackUnreachableError, safeUrl } from './errors.js';

export interface TlsOptions {
  /** CA bundle path (clouds.yaml `cacert`). */
  cacert?: string | undefined;
  /** Client certificate and key paths (clouds.yaml `cert`, `key`). */
  cert?: string | undefined;
  key?: string | undefined;
  /** false = do not verify the server certificate (clouds.yaml `verify: false` / `insecure: true`). */
  verify?: boolean | undefined;
}

export interface HttpRequest {
  method: string;
  url: string;
  headers?: Record<string, string>;
  body?: unknown;
  timeoutMs?: number;
  /** Name of the service for messages ("Neutron", "Keystone"). */
  service: string;
}

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

const readCache = new Map<string, Buffer>();
function readPem(path: string, what: string): Buffer {
  let b = readCache.get(path);
  if (!b) {
    try {
      b = readFileSync(path);
    } catch (e) {
      throw new CloudConfigError(
        `cannot read ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
        `fix the ${what} path in clouds.yaml (or OS_CACERT / OS_CERT / OS_KEY)`,
      );
    }
    readCache.set(path, b);
  }
  return b;
}

const NETWORK_HINTS: Record<string, string> = {
  ECONNREFUSED: 'nothing listens there: check the URL and port, and that the service is running',
  ENOTFOUND: 'the host name does not resolve: check the URL',
  EAI_AGAIN: 'DNS lookup failed: check the URL and the resolver',
  ETIMEDOUT: 'no answer in time: check the URL, firewalls and routes to it',
  EHOSTUNREACH: 'no route to the host: check the URL and the network',
  ENETUNREACH: 'no route to the network: check the URL and the network',
  ECONNRESET: 'the connection was reset: check that the URL speaks HTTP(S) on that port',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'the certificate is self-signed: set cacert (or verify: false) in clouds.yaml',
  SELF_SIGNED_CERT_IN_CHAIN: 'the certificate chain is not trusted: set cacert in clouds.yaml',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'the certificate chain is not trusted: set cacert in clouds.yaml',
  ERR_TLS_CERT_ALTNAME_INVALID: 'the certificate does not match the host name in the URL',
  CERT_HAS_EXPIRED: 'the server certificate has expired',
};

export async function httpRequest(req: HttpRequest, tls: TlsOptions = {}): Promise<HttpResponse> {
  const url = new URL(req.url);
  const isHttps = url.protocol === 'https:';
  if (!isHttps && url.protocol !== 'http:') {
    throw new CloudConfigError(
      `${req.service} URL ${safeUrl(req.url)} is not http(s)`,
      'use an http:// or https:// URL in clouds.yaml / OS_AUTH_URL / the endpoint override',
    );
  }
  const payload = req.body === undefined ? undefined : Buffer.from(JSON.stringify(req.body));
  const headers: Record<string, string> = { Accept: 'application/json', ...(req.headers ?? {}) };
  if (payload) {
    headers['Content-Type'] = 'application/json';
    headers['Content-Length'] = String(payload.length);
  }
  const options: https.RequestOptions = { method: req.method, headers };
  if (isHttps) {
    if (tls.cacert) options.ca = readPem(tls.cacert, 'CA bundle (cacert)');
    if (tls.cert) options.cert = readPem(tls.cert, 'client certificate (cert)');
    if (tls.key) options.key = readPem(tls.key, 'client key (key)');
    if (tls.verify === false) options.rejectUnauthorized = false;
  }
  const timeoutMs = req.timeoutMs ?? 30_000;
  const shown = safeUrl(`${url.origin}${url.pathname}`);
  return new Promise<HttpResponse>((resolve, reject) => {
    const r = (isHttps ? https : http).request(url, options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          text: Buffer.concat(chunks).toString(),
        }),
      );
      res.on('error', (e) => reject(unreachable(req.service, shown, e)));
    });
    r.setTimeout(timeoutMs, () => {
      const e = new Error(`no answer within ${timeoutMs / 1000} s`) as NodeJS.ErrnoException;
      e.code = 'ETIMEDOUT';
      r.destroy(e);
    });
    r.on('error', (e) => reject(unreachable(req.service, shown, e)));
    r.end(payload);
  });
}

function unreachable(service: string, url: string, e: Error): OpenStackUnreachableError {
  const code = (e as NodeJS.ErrnoException).code;
  const detail = code && code !== e.message ? `${code} (${e.message})` : e.message;
  const hint =
    (code && NETWORK_HINTS[code]) ??
    `check the ${service} URL in clouds.yaml (or the catalog) and the network`;
  return new OpenStackUnreachableError(service, url, code, detail, hint);
}
