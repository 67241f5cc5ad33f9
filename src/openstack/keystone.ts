/**
 * Keystone v3 authentication (reference/openstack-neutron.md §5.2): password, application credential
 * or token; the token comes back in the X-Subject-Token header, the body carries expires_at and the
 * service catalog. Tokens are cached and renewed `refreshMarginMs` before they expire, and dropped
 * after a 401 from a service so that the next request authenticates again.
 */
import { OpenStackAuthError, safeUrl } from './errors.js';
import { httpRequest, type TlsOptions } from './http.js';
import { Secret, type EndpointInterface, type KeystoneAuthOptions } from './config.js';

export interface CatalogEndpoint {
  interface: string;
  region?: string;
  region_id?: string;
  url: string;
}
export interface CatalogEntry {
  type: string;
  name?: string;
  endpoints: CatalogEndpoint[];
}
export interface KeystoneToken {
  token: Secret;
  expiresAt: Date;
  catalog: CatalogEntry[];
  projectId: string | undefined;
}

export interface KeystoneSessionOptions {
  tls?: TlsOptions;
  timeoutMs?: number;
  /** Renew this long before expires_at (default 5 minutes, capped at half the token's lifetime). */
  refreshMarginMs?: number;
  /** Name used in messages (the cloud's name). */
  cloudName?: string;
  now?: () => number;
}

/** Keystone's token URL for an auth_url given with or without the /v3 suffix. */
export function tokenUrl(authUrl: string): string {
  const base = authUrl.replace(/\/+$/, '');
  if (/\/v2\.0$/.test(base)) {
    throw new OpenStackAuthError(
      `auth_url ${safeUrl(authUrl)} is a Keystone v2.0 URL`,
      'use the Keystone v3 URL (replace /v2.0 with /v3)',
    );
  }
  return /\/v3$/.test(base) ? `${base}/auth/tokens` : `${base}/v3/auth/tokens`;
}

/** Drops a trailing slash and a trailing /v2.0 from a Neutron endpoint (catalogs differ). */
export function normaliseNeutronEndpoint(url: string): string {
  return url.replace(/\/+$/, '').replace(/\/v2\.0$/, '');
}

export class KeystoneSession {
  readonly #auth: KeystoneAuthOptions;
  readonly #opts: KeystoneSessionOptions;
  #current: KeystoneToken | undefined;
  #refreshAt = 0;
  #inflight: Promise<KeystoneToken> | undefined;
  /** How many times this session has asked Keystone for a token (for metrics and tests). */
  authCount = 0;

  constructor(auth: KeystoneAuthOptions, opts: KeystoneSessionOptions = {}) {
    this.#auth = auth;
    this.#opts = opts;
  }

  #now(): number {
    return (this.#opts.now ?? Date.now)();
  }

  /** A valid token, from the cache if it is not about to expire. */
  async token(): Promise<KeystoneToken> {
    const t = this.#current;
    if (t && this.#now() < this.#refreshAt) return t;
    this.#inflight ??= this.#authenticate().finally(() => (this.#inflight = undefined));
    return this.#inflight;
  }

  /** Forget `token` (a service answered 401 for it); the next token() authenticates again. */
  invalidate(token: Secret): void {
    if (this.#current && this.#current.token.reveal() === token.reveal()) this.#current = undefined;
  }

  /** The URL of `type` in the catalog for the interface and region (trailing /v2.0 removed for network). */
  async endpoint(type: string, iface: EndpointInterface, region: string | undefined): Promise<string> {
    const t = await this.token();
    const entry = t.catalog.find((c) => c.type === type);
    if (!entry) {
      throw new OpenStackAuthError(
        `the service catalog of cloud ${this.#name()} has no "${type}" service`,
        `ask the operator for Neutron's URL and set network_endpoint_override, or check that the project may use the ${type} service`,
      );
    }
    const byIface = entry.endpoints.filter((e) => e.interface === iface);
    const matches = region ? byIface.filter((e) => (e.region_id ?? e.region) === region) : byIface;
    const regions = [...new Set(byIface.map((e) => e.region_id ?? e.region ?? '?'))];
    if (matches.length === 0) {
      throw new OpenStackAuthError(
        `the catalog of cloud ${this.#name()} has no ${iface} "${type}" endpoint${region ? ` in region ${region}` : ''} (${iface} endpoints exist in: ${regions.join(', ') || 'no region'})`,
        region
          ? 'set region_name to one of those regions, or change interface'
          : 'set interface (public, internal, admin) in clouds.yaml',
      );
    }
    if (!region && regions.length > 1) {
      throw new OpenStackAuthError(
        `cloud ${this.#name()} has "${type}" endpoints in several regions (${regions.join(', ')})`,
        'set region_name (or OS_REGION_NAME) to choose one',
      );
    }
    return normaliseNeutronEndpoint(matches[0]!.url);
  }

  #name(): string {
    return `"${this.#opts.cloudName ?? 'openstack'}"`;
  }

  #body(): unknown {
    const a = this.#auth;
    const domain = (name?: string, id?: string) => (id ? { id } : { name: name ?? 'Default' });
    const user = () =>
      a.userId ? { id: a.userId } : { name: a.username, domain: domain(a.userDomainName, a.userDomainId) };
    const scope = () =>
      a.projectId
        ? { project: { id: a.projectId } }
        : { project: { name: a.projectName, domain: domain(a.projectDomainName, a.projectDomainId) } };
    if (a.applicationCredentialSecret) {
      // Scope is implied by the application credential: sending one is an error.
      const ac = a.applicationCredentialId
        ? { id: a.applicationCredentialId, secret: a.applicationCredentialSecret.reveal() }
        : { name: a.applicationCredentialName, user: user(), secret: a.applicationCredentialSecret.reveal() };
      return { auth: { identity: { methods: ['application_credential'], application_credential: ac } } };
    }
    if (a.password) {
      return {
        auth: {
          identity: {
            methods: ['password'],
            password: { user: { ...user(), password: a.password.reveal() } },
          },
          scope: scope(),
        },
      };
    }
    if (a.token) {
      return { auth: { identity: { methods: ['token'], token: { id: a.token.reveal() } }, scope: scope() } };
    }
    throw new OpenStackAuthError(
      `cloud ${this.#name()} has no credentials`,
      'set a password, application credential or token',
    );
  }

  async #authenticate(): Promise<KeystoneToken> {
    const url = tokenUrl(this.#auth.authUrl);
    this.authCount++;
    const res = await httpRequest(
      {
        method: 'POST',
        url,
        body: this.#body(),
        service: 'Keystone',
        timeoutMs: this.#opts.timeoutMs ?? 30_000,
      },
      this.#opts.tls,
    );
    if (res.status === 401) {
      throw new OpenStackAuthError(
        `Keystone at ${safeUrl(url)} rejected the credentials of cloud ${this.#name()} (401 ${keystoneMessage(res.text)})`,
        this.#auth.applicationCredentialSecret
          ? 'check application_credential_id/secret (the credential may be expired or deleted)'
          : 'check username, password, user/project domain and project in clouds.yaml / secure.yaml (or OS_* variables)',
        401,
      );
    }
    if (res.status === 404) {
      throw new OpenStackAuthError(
        `Keystone token URL ${safeUrl(url)} answered 404`,
        "auth_url must be Keystone's root or its /v3 URL, e.g. https://keystone.example.com:5000/v3",
        404,
      );
    }
    if (res.status !== 201 && res.status !== 200) {
      throw new OpenStackAuthError(
        `Keystone at ${safeUrl(url)} answered ${res.status} for cloud ${this.#name()}: ${keystoneMessage(res.text)}`,
        res.status === 403
          ? 'the user may not use that project: check project_name/project_id'
          : 'check auth_url and the Keystone service',
        res.status,
      );
    }
    const header = res.headers['x-subject-token'];
    const tokenValue = Array.isArray(header) ? header[0] : header;
    if (!tokenValue) {
      throw new OpenStackAuthError(
        `Keystone at ${safeUrl(url)} sent no X-Subject-Token header`,
        'auth_url does not point at Keystone v3: check it',
      );
    }
    let body: unknown;
    try {
      body = JSON.parse(res.text);
    } catch {
      body = undefined;
    }
    const tok = (
      body as { token?: { expires_at?: unknown; catalog?: unknown; project?: { id?: unknown } } } | undefined
    )?.token;
    const expiresAt = typeof tok?.expires_at === 'string' ? new Date(tok.expires_at) : new Date(NaN);
    if (!tok || Number.isNaN(expiresAt.getTime())) {
      throw new OpenStackAuthError(
        `Keystone at ${safeUrl(url)} answered without token.expires_at`,
        'auth_url does not point at Keystone v3: check it',
      );
    }
    const catalog = Array.isArray(tok.catalog) ? (tok.catalog as CatalogEntry[]) : [];
    const projectId = typeof tok.project?.id === 'string' ? tok.project.id : undefined;
    const t: KeystoneToken = { token: new Secret(tokenValue), expiresAt, catalog, projectId };
    // Renew refreshMarginMs before expiry; a token living less than twice that is renewed at half-life.
    const now = this.#now();
    const life = expiresAt.getTime() - now;
    const margin = this.#opts.refreshMarginMs ?? 300_000;
    this.#refreshAt = now + Math.max(0, life > 2 * margin ? life - margin : life / 2);
    this.#current = t;
    return t;
  }
}

function keystoneMessage(text: string): string {
  try {
    const j = JSON.parse(text) as { error?: { message?: unknown; title?: unknown } };
    const m = j.error?.message ?? j.error?.title;
    if (typeof m === 'string') return m.slice(0, 200);
  } catch {
    /* not JSON */
  }
  return text.trim().slice(0, 120) || 'no message';
}
