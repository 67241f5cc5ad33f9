/**
 * A thin, typed Neutron v2.0 client: the ~20 calls weft needs, no SDK. Authentication is either a
 * KeystoneSession (token + catalog lookup of "network", renewed before expiry and once after a 401) or
 * none (an explicit endpoint, e.g. a noauth Neutron). Neutron's errors become NeutronApiError carrying
 * NeutronError.type and its message. Requests are logged at debug level as method, path, status and
 * duration only: never headers, bodies or tokens.
 */
import { NeutronApiError, OpenStackAuthError, safeUrl } from './errors.js';
import { httpRequest, type TlsOptions } from './http.js';
import { KeystoneSession, normaliseNeutronEndpoint } from './keystone.js';
import {
  loadCloudConfig,
  type CloudConfig,
  type EndpointInterface,
  type LoadCloudOptions,
} from './config.js';
import type {
  AddressPair,
  Extension,
  Network,
  Port,
  PortFilter,
  Router,
  RouterInterfaceInfo,
  Route,
  Subnet,
} from './types.js';

/** The subset of pino's API the OpenStack and cloud modules use. */
export interface Logger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}
export const silentLogger: Logger = { debug() {}, info() {}, warn() {} };

export interface NeutronClientOptions {
  /** Neutron's URL, with or without /v2.0 (auth none, or an override of the catalog). */
  endpoint?: string;
  /** Keystone session; without it requests are sent without a token. */
  session?: KeystoneSession;
  interface?: EndpointInterface;
  region?: string;
  tls?: TlsOptions;
  timeoutMs?: number;
  log?: Logger;
  cloudName?: string;
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | readonly (string | number)[] | undefined>;
  body?: unknown;
  /** Sends If-Match: revision_number=N (Neutron's revision-if-match extension): 412 if it changed. */
  ifRevision?: number;
}

const HINTS: Record<string, string> = {
  RevisionNumberConstraintFailed: 'someone else changed the object meanwhile: read it again and retry',
  AllowedAddressPairExhausted:
    'the port has as many allowed address pairs as Neutron allows (max_allowed_address_pair, default 10): remove unused pairs or ask the operator to raise the limit',
  RoutesExhausted:
    'the router has as many routes as Neutron allows (max_routes, default 30): remove unused routes, use a bigger SubnetLen-per-route plan, or ask the operator to raise the limit',
  AddressPairAndPortSecurityRequired:
    'port security is off on this port, so address pairs are neither possible nor needed',
  InvalidRoutes: 'every nexthop must be an address in a subnet attached to the router',
  PolicyNotAuthorized:
    'the OpenStack user lacks the role for this call: ask the operator for the needed policy',
  OverQuota: 'a project quota is reached: ask the operator to raise it',
};

/** How often an idempotent request is sent again after a 500/503. */
const SERVER_RETRIES = 3;

export class NeutronClient {
  readonly #opts: NeutronClientOptions;
  readonly #log: Logger;

  constructor(opts: NeutronClientOptions) {
    if (!opts.endpoint && !opts.session) {
      throw new OpenStackAuthError(
        'NeutronClient needs an endpoint or a Keystone session',
        'pass one of them',
      );
    }
    this.#opts = opts;
    this.#log = opts.log ?? silentLogger;
  }

  /** A client for a cloud from clouds.yaml / OS_* (see loadCloudConfig). */
  static fromCloud(cloud: CloudConfig, extra: { timeoutMs?: number; log?: Logger } = {}): NeutronClient {
    const o: NeutronClientOptions = {
      interface: cloud.interface,
      tls: cloud.tls,
      cloudName: cloud.name,
      ...extra,
    };
    if (cloud.regionName) o.region = cloud.regionName;
    if (cloud.networkEndpoint) o.endpoint = cloud.networkEndpoint;
    if (cloud.authType !== 'none' && cloud.auth) {
      const s: ConstructorParameters<typeof KeystoneSession>[1] = { tls: cloud.tls, cloudName: cloud.name };
      if (extra.timeoutMs !== undefined) s.timeoutMs = extra.timeoutMs;
      o.session = new KeystoneSession(cloud.auth, s);
    }
    return new NeutronClient(o);
  }

  /** loadCloudConfig + fromCloud. */
  static fromEnvironment(o: LoadCloudOptions & { timeoutMs?: number; log?: Logger } = {}): NeutronClient {
    const extra: { timeoutMs?: number; log?: Logger } = {};
    if (o.timeoutMs !== undefined) extra.timeoutMs = o.timeoutMs;
    if (o.log) extra.log = o.log;
    return NeutronClient.fromCloud(loadCloudConfig(o), extra);
  }

  get session(): KeystoneSession | undefined {
    return this.#opts.session;
  }

  async #base(): Promise<string> {
    if (this.#opts.endpoint) return normaliseNeutronEndpoint(this.#opts.endpoint);
    return this.#opts.session!.endpoint('network', this.#opts.interface ?? 'public', this.#opts.region);
  }

  /** One Neutron call; returns the parsed JSON body (undefined for 204). */
  async request<T>(method: string, path: string, ro: RequestOptions = {}): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const base = await this.#base();
      const headers: Record<string, string> = {};
      const tok = this.#opts.session ? (await this.#opts.session.token()).token : undefined;
      if (tok) headers['X-Auth-Token'] = tok.reveal();
      if (ro.ifRevision !== undefined) headers['If-Match'] = `revision_number=${ro.ifRevision}`;
      const url = `${base}/v2.0${path}${queryString(ro.query)}`;
      const t0 = Date.now();
      const res = await httpRequest(
        {
          method,
          url,
          headers,
          body: ro.body,
          service: 'Neutron',
          timeoutMs: this.#opts.timeoutMs ?? 30_000,
        },
        this.#opts.tls,
      );
      this.#log.debug({ method, path, status: res.status, ms: Date.now() - t0 }, 'neutron request');
      if (res.status === 401) {
        if (tok && attempt === 0) {
          this.#opts.session!.invalidate(tok);
          this.#log.info({ method, path }, 'neutron answered 401: authenticating again');
          continue;
        }
        throw new OpenStackAuthError(
          tok
            ? `Neutron at ${safeUrl(base)} rejected a freshly issued token of cloud "${this.#opts.cloudName ?? 'openstack'}" (401)`
            : `Neutron at ${safeUrl(base)} requires authentication (401) but cloud "${this.#opts.cloudName ?? 'openstack'}" has auth_type none`,
          tok
            ? 'the Keystone user or project may not use Neutron: check the project and its roles'
            : 'configure Keystone credentials (auth_url, username/password or an application credential) in clouds.yaml',
          401,
        );
      }
      // A 500/503 is usually a database conflict inside Neutron (deadlock, SQLite's "locked") that it did
      // not retry itself. GET, PUT and DELETE are idempotent in Neutron's API (a PUT carries the whole
      // value; add/remove_extraroutes of routes already there / gone are no-ops), so they are sent
      // again; a POST (a create) is not, and fails at once.
      if ((res.status === 500 || res.status === 503) && method !== 'POST' && attempt < SERVER_RETRIES) {
        const delay = 200 * 2 ** attempt;
        this.#log.info(
          { method, path, status: res.status, retryInMs: delay },
          'neutron server error: retrying',
        );
        await new Promise((r) => setTimeout(r, delay));
        continue;
      }
      if (res.status >= 400)
        throw toNeutronError(method, path, res.status, res.text, res.headers['x-openstack-request-id']);
      if (res.status === 204 || res.text === '') return undefined as T;
      try {
        return JSON.parse(res.text) as T;
      } catch {
        throw new NeutronApiError({
          status: res.status,
          type: 'InvalidResponse',
          neutronMessage: `not JSON: ${res.text.slice(0, 80)}`,
          method,
          path,
          hint: `check that ${safeUrl(base)} is Neutron's URL`,
        });
      }
    }
  }

  // ------------------------------------------------------------------ discovery
  async listExtensions(): Promise<Extension[]> {
    return (await this.request<{ extensions: Extension[] }>('GET', '/extensions')).extensions;
  }

  // ------------------------------------------------------------------ ports
  async listPorts(filter: PortFilter = {}): Promise<Port[]> {
    const q: RequestOptions['query'] = {};
    const fixed: string[] = [];
    if (filter.ipAddress) fixed.push(`ip_address=${filter.ipAddress}`);
    if (filter.subnetId) fixed.push(`subnet_id=${filter.subnetId}`);
    if (fixed.length) q.fixed_ips = fixed;
    if (filter.macAddress) q.mac_address = filter.macAddress;
    if (filter.deviceId) q.device_id = filter.deviceId;
    if (filter.deviceOwner) q.device_owner = filter.deviceOwner;
    if (filter.networkId) q.network_id = filter.networkId;
    if (filter.name) q.name = filter.name;
    if (filter.projectId) q.project_id = filter.projectId;
    return (await this.request<{ ports: Port[] }>('GET', '/ports', { query: q })).ports;
  }
  async getPort(id: string): Promise<Port> {
    return (await this.request<{ port: Port }>('GET', `/ports/${enc(id)}`)).port;
  }
  async createPort(port: Record<string, unknown>): Promise<Port> {
    return (await this.request<{ port: Port }>('POST', '/ports', { body: { port } })).port;
  }
  async updatePort(id: string, port: Record<string, unknown>, ifRevision?: number): Promise<Port> {
    const ro: RequestOptions = { body: { port } };
    if (ifRevision !== undefined) ro.ifRevision = ifRevision;
    return (await this.request<{ port: Port }>('PUT', `/ports/${enc(id)}`, ro)).port;
  }
  async setAllowedAddressPairs(id: string, pairs: AddressPair[], ifRevision?: number): Promise<Port> {
    return this.updatePort(id, { allowed_address_pairs: pairs }, ifRevision);
  }
  async deletePort(id: string): Promise<void> {
    await this.request('DELETE', `/ports/${enc(id)}`);
  }

  // ------------------------------------------------------------------ networks and subnets
  async getNetwork(id: string): Promise<Network> {
    return (await this.request<{ network: Network }>('GET', `/networks/${enc(id)}`)).network;
  }
  async createNetwork(network: Record<string, unknown>): Promise<Network> {
    return (await this.request<{ network: Network }>('POST', '/networks', { body: { network } })).network;
  }
  async deleteNetwork(id: string): Promise<void> {
    await this.request('DELETE', `/networks/${enc(id)}`);
  }
  async getSubnet(id: string): Promise<Subnet> {
    return (await this.request<{ subnet: Subnet }>('GET', `/subnets/${enc(id)}`)).subnet;
  }
  async listSubnets(ids: readonly string[]): Promise<Subnet[]> {
    if (ids.length === 0) return [];
    return (await this.request<{ subnets: Subnet[] }>('GET', '/subnets', { query: { id: ids } })).subnets;
  }
  async createSubnet(subnet: Record<string, unknown>): Promise<Subnet> {
    return (await this.request<{ subnet: Subnet }>('POST', '/subnets', { body: { subnet } })).subnet;
  }

  // ------------------------------------------------------------------ routers
  async getRouter(id: string): Promise<Router> {
    return (await this.request<{ router: Router }>('GET', `/routers/${enc(id)}`)).router;
  }
  async createRouter(router: Record<string, unknown>): Promise<Router> {
    return (await this.request<{ router: Router }>('POST', '/routers', { body: { router } })).router;
  }
  async deleteRouter(id: string): Promise<void> {
    await this.request('DELETE', `/routers/${enc(id)}`);
  }
  async updateRouter(id: string, router: Record<string, unknown>, ifRevision?: number): Promise<Router> {
    const ro: RequestOptions = { body: { router } };
    if (ifRevision !== undefined) ro.ifRevision = ifRevision;
    return (await this.request<{ router: Router }>('PUT', `/routers/${enc(id)}`, ro)).router;
  }
  /** Replaces the whole route list (extraroute); pass ifRevision to make it a compare-and-swap. */
  async setRoutes(id: string, routes: Route[], ifRevision?: number): Promise<Router> {
    return this.updateRouter(id, { routes }, ifRevision);
  }
  /** extraroute-atomic: adds routes (existing ones are a no-op); returns the whole router. */
  async addExtraRoutes(id: string, routes: Route[]): Promise<Router> {
    return (
      await this.request<{ router: Router }>('PUT', `/routers/${enc(id)}/add_extraroutes`, {
        body: { router: { routes } },
      })
    ).router;
  }
  /** extraroute-atomic: removes exactly these (destination, nexthop) routes; missing ones are a no-op. */
  async removeExtraRoutes(id: string, routes: Route[]): Promise<Router> {
    return (
      await this.request<{ router: Router }>('PUT', `/routers/${enc(id)}/remove_extraroutes`, {
        body: { router: { routes } },
      })
    ).router;
  }
  async addRouterInterface(id: string, subnetId: string): Promise<RouterInterfaceInfo> {
    return this.request<RouterInterfaceInfo>('PUT', `/routers/${enc(id)}/add_router_interface`, {
      body: { subnet_id: subnetId },
    });
  }
  async removeRouterInterface(id: string, subnetId: string): Promise<void> {
    await this.request('PUT', `/routers/${enc(id)}/remove_router_interface`, {
      body: { subnet_id: subnetId },
    });
  }
}

function enc(s: string): string {
  return encodeURIComponent(s);
}

function queryString(q: RequestOptions['query']): string {
  if (!q) return '';
  const parts: string[] = [];
  for (const [k, v] of Object.entries(q)) {
    if (v === undefined) continue;
    for (const x of Array.isArray(v) ? v : [v])
      parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(String(x))}`);
  }
  return parts.length ? `?${parts.join('&')}` : '';
}

function toNeutronError(
  method: string,
  path: string,
  status: number,
  text: string,
  requestId: string | string[] | undefined,
): NeutronApiError {
  let type = `HTTP${status}`;
  let message =
    text
      .replace(/<[^>]*>/g, ' ')
      .replace(/\s+/g, ' ')
      .trim()
      .slice(0, 200) || 'no message';
  try {
    const j = JSON.parse(text) as { NeutronError?: { type?: unknown; message?: unknown } };
    if (j.NeutronError) {
      if (typeof j.NeutronError.type === 'string') type = j.NeutronError.type;
      if (typeof j.NeutronError.message === 'string') message = j.NeutronError.message;
    }
  } catch {
    /* not JSON (webob error page): keep the text */
  }
  let hint = HINTS[type];
  if (!hint && /Unrecognized attribute/.test(message)) {
    hint = 'this cloud lacks the Neutron extension that defines the attribute (see GET /v2.0/extensions)';
  }
  if (!hint && status === 404) hint = 'the object is gone or the ID is wrong';
  if (!hint && status === 403) hint = HINTS.PolicyNotAuthorized;
  return new NeutronApiError({
    status,
    type,
    neutronMessage: message,
    method,
    path,
    requestId: Array.isArray(requestId) ? requestId[0] : requestId,
    hint,
  });
}
