/**
 * Cloud configuration the way openstacksdk finds it (reference/openstack-neutron.md §5.1):
 *
 *  - clouds.yaml: `$OS_CLIENT_CONFIG_FILE`, `./clouds.yaml`, `~/.config/openstack/clouds.yaml`,
 *    `/etc/openstack/clouds.yaml`; the first file found wins.
 *  - secure.yaml: `$OS_CLIENT_SECURE_FILE`, then the same directories; deep-merged over clouds.yaml.
 *  - `OS_CLOUD` selects the entry. Without it, `OS_*` variables make a cloud named `envvars`
 *    (renamable with `OS_CLOUD_NAME`).
 *  - Keys are the OS_* names in lower case without the prefix; auth plugin options go under `auth:`.
 *
 * Supported auth types: password / v3password, v3applicationcredential, token / v3token (all Keystone
 * v3), and `none` (no Keystone; Neutron at an explicit endpoint, e.g. the noauth test fixture).
 * Secrets are held in `Secret` objects that print as "***" in logs, JSON and util.inspect.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { inspect } from 'node:util';
import { LineCounter, parseDocument } from 'yaml';
import { CloudConfigError } from './errors.js';
import type { TlsOptions } from './http.js';

/** A credential. Only `reveal()` gives the value; every other way of printing it gives "***". */
export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return '***';
  }
  toJSON(): string {
    return '***';
  }
  [inspect.custom](): string {
    return '***';
  }
}

export type AuthType = 'password' | 'v3applicationcredential' | 'token' | 'none';
export type EndpointInterface = 'public' | 'internal' | 'admin';

export interface KeystoneAuthOptions {
  authUrl: string;
  username?: string;
  userId?: string;
  password?: Secret;
  userDomainName?: string;
  userDomainId?: string;
  projectName?: string;
  projectId?: string;
  projectDomainName?: string;
  projectDomainId?: string;
  applicationCredentialId?: string;
  applicationCredentialName?: string;
  applicationCredentialSecret?: Secret;
  token?: Secret;
}

export interface CloudConfig {
  /** The cloud's name as selected (OS_CLOUD, or "envvars"). */
  name: string;
  /** Where it came from: the clouds.yaml path, or "environment". */
  source: string;
  authType: AuthType;
  /** Keystone options; absent for auth type "none". */
  auth?: KeystoneAuthOptions;
  regionName?: string;
  interface: EndpointInterface;
  /** Neutron's URL when given explicitly (network_endpoint_override / endpoint_override / auth.endpoint). */
  networkEndpoint?: string;
  tls: TlsOptions;
}

export interface LoadCloudOptions {
  /** The cloud to select; default `env.OS_CLOUD`, else the `envvars` cloud. */
  cloud?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  home?: string;
  /** Replaces /etc/openstack (for tests). */
  etcDir?: string;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The clouds.yaml (or secure.yaml) search list, in openstacksdk's order. */
export function configSearchPath(file: 'clouds.yaml' | 'secure.yaml', o: LoadCloudOptions = {}): string[] {
  const env = o.env ?? process.env;
  const first = file === 'clouds.yaml' ? env.OS_CLIENT_CONFIG_FILE : env.OS_CLIENT_SECURE_FILE;
  const list = [
    join(o.cwd ?? process.cwd(), file),
    join(o.home ?? homedir(), '.config', 'openstack', file),
    join(o.etcDir ?? '/etc/openstack', file),
  ];
  return first ? [resolve(first), ...list] : list;
}

function readYaml(path: string, what: string): Obj {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new CloudConfigError(
      `cannot read ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
      'check the file and its permissions',
    );
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: false, lineCounter });
  const err = doc.errors[0];
  if (err) {
    const pos = lineCounter.linePos(err.pos[0]);
    const where = pos ? `:${pos.line}:${pos.col}` : '';
    const msg = err.message.split('\n')[0] ?? err.message;
    throw new CloudConfigError(
      `${path}${where}: not valid YAML: ${msg}`,
      `fix the YAML syntax of ${what} (indentation uses spaces; see openstacksdk's clouds.yaml format)`,
    );
  }
  const data: unknown = doc.toJS();
  if (data === null || data === undefined) return {};
  if (!isObj(data)) {
    throw new CloudConfigError(
      `${path}: ${what} must be a mapping with a "clouds:" key`,
      'write "clouds:" then one entry per cloud, as openstacksdk documents',
    );
  }
  return data;
}

function deepMerge(base: Obj, over: Obj): Obj {
  const out: Obj = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = isObj(b) && isObj(v) ? deepMerge(b, v) : v;
  }
  return out;
}

function firstExisting(paths: string[]): string | undefined {
  return paths.find((p) => existsSync(p));
}

/** The OS_* variables as a clouds.yaml-style entry (the `envvars` cloud), or undefined if none are set. */
function envCloud(env: NodeJS.ProcessEnv): Obj | undefined {
  const auth: Obj = {};
  const top: Obj = {};
  const authKeys = [
    'auth_url',
    'username',
    'user_id',
    'password',
    'user_domain_name',
    'user_domain_id',
    'project_name',
    'project_id',
    'tenant_name',
    'tenant_id',
    'project_domain_name',
    'project_domain_id',
    'domain_name',
    'domain_id',
    'default_domain',
    'application_credential_id',
    'application_credential_name',
    'application_credential_secret',
    'token',
    'endpoint',
  ];
  for (const k of authKeys) {
    const v = env[`OS_${k.toUpperCase()}`];
    if (v !== undefined && v !== '') auth[k] = v;
  }
  const topKeys = [
    'auth_type',
    'region_name',
    'interface',
    'identity_api_version',
    'cacert',
    'cert',
    'key',
    'insecure',
    'network_endpoint_override',
    'endpoint_override',
  ];
  for (const k of topKeys) {
    const v = env[`OS_${k.toUpperCase()}`];
    if (v !== undefined && v !== '') top[k] = v;
  }
  if (Object.keys(auth).length === 0 && top.network_endpoint_override === undefined) return undefined;
  return { ...top, auth };
}

const AUTH_TYPES: Record<string, AuthType> = {
  password: 'password',
  v3password: 'password',
  v3applicationcredential: 'v3applicationcredential',
  token: 'token',
  v3token: 'token',
  none: 'none',
  noauth: 'none',
};

/**
 * Finds and validates the selected cloud. Throws CloudConfigError with one line naming the file, the
 * key and the fix.
 */
export function loadCloudConfig(o: LoadCloudOptions = {}): CloudConfig {
  const env = o.env ?? process.env;
  const wanted = o.cloud ?? (env.OS_CLOUD || undefined);
  const cloudsPath = firstExisting(configSearchPath('clouds.yaml', o));
  if (env.OS_CLIENT_CONFIG_FILE && !existsSync(resolve(env.OS_CLIENT_CONFIG_FILE)) && wanted) {
    throw new CloudConfigError(
      `OS_CLIENT_CONFIG_FILE=${env.OS_CLIENT_CONFIG_FILE} does not exist`,
      'point OS_CLIENT_CONFIG_FILE at your clouds.yaml, or unset it',
    );
  }

  if (!wanted) {
    const e = envCloud(env);
    if (e) return validate(env.OS_CLOUD_NAME || 'envvars', 'environment', e);
    let known = '';
    if (cloudsPath) {
      const names = Object.keys(cloudsOf(readYaml(cloudsPath, 'clouds.yaml'), cloudsPath));
      known = ` (${cloudsPath} defines: ${names.join(', ') || 'none'})`;
    }
    throw new CloudConfigError(
      `no OpenStack cloud selected${known}`,
      'set OS_CLOUD to a cloud in clouds.yaml, or set OS_AUTH_URL and the other OS_* variables',
    );
  }

  if (!cloudsPath) {
    throw new CloudConfigError(
      `cloud "${wanted}" requested but no clouds.yaml found (looked in ${configSearchPath('clouds.yaml', o).join(', ')})`,
      'create clouds.yaml in one of those places or set OS_CLIENT_CONFIG_FILE to its path',
    );
  }
  let data = readYaml(cloudsPath, 'clouds.yaml');
  const securePath = firstExisting(configSearchPath('secure.yaml', o));
  if (securePath) data = deepMerge(data, readYaml(securePath, 'secure.yaml'));
  const clouds = cloudsOf(data, cloudsPath);
  const entry = clouds[wanted];
  if (entry === undefined) {
    throw new CloudConfigError(
      `cloud "${wanted}" is not in ${cloudsPath} (it defines: ${Object.keys(clouds).join(', ') || 'none'})`,
      'set OS_CLOUD (or --os-cloud) to one of those names, or add the cloud to the file',
    );
  }
  if (!isObj(entry)) {
    throw new CloudConfigError(
      `${cloudsPath}: clouds.${wanted} must be a mapping`,
      'give the cloud auth: and the other keys as openstacksdk documents',
    );
  }
  return validate(wanted, cloudsPath, entry);
}

function cloudsOf(data: Obj, path: string): Obj {
  const c = data.clouds;
  if (c === undefined) {
    throw new CloudConfigError(
      `${path}: no "clouds:" key`,
      'clouds.yaml must start with "clouds:" and list the clouds under it',
    );
  }
  if (!isObj(c)) {
    throw new CloudConfigError(
      `${path}: "clouds:" must be a mapping of cloud names`,
      'list the clouds by name under "clouds:"',
    );
  }
  return c;
}

function validate(name: string, source: string, entry: Obj): CloudConfig {
  const where = source === 'environment' ? 'OS_' : `${source}: clouds.${name}.`;
  const key = (k: string) => (source === 'environment' ? `OS_${k.toUpperCase()}` : `${where}${k}`);
  const str = (obj: Obj, k: string, label = k): string | undefined => {
    const v = obj[k];
    if (v === undefined || v === null || v === '') return undefined;
    if (typeof v === 'string') return v;
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    throw new CloudConfigError(`${key(label)} must be a string`, `write ${label} as a plain string`);
  };
  if (entry.profile !== undefined) {
    throw new CloudConfigError(
      `${key('profile')}: vendor profiles (clouds-public.yaml) are not supported by weft`,
      'write auth_url, region_name and interface into the cloud entry itself',
    );
  }
  const authRaw = entry.auth ?? {};
  if (!isObj(authRaw))
    throw new CloudConfigError(`${key('auth')} must be a mapping`, 'put the auth options under auth:');
  const authStr = (k: string) => str(authRaw, k, `auth.${k}`);

  const idv = str(entry, 'identity_api_version');
  if (idv !== undefined && idv !== '3') {
    throw new CloudConfigError(
      `${key('identity_api_version')} is ${idv}: only Keystone v3 is supported`,
      'set identity_api_version: 3 (Keystone v2 was removed from OpenStack in Queens)',
    );
  }
  const iface = (str(entry, 'interface') ?? str(entry, 'endpoint_type') ?? 'public').replace(/URL$/, '');
  if (iface !== 'public' && iface !== 'internal' && iface !== 'admin') {
    throw new CloudConfigError(`${key('interface')} is "${iface}"`, 'use public, internal or admin');
  }
  const tls: TlsOptions = { cacert: str(entry, 'cacert'), cert: str(entry, 'cert'), key: str(entry, 'key') };
  const verify = entry.verify;
  const insecure = entry.insecure;
  if (verify === false || verify === 'false' || insecure === true || insecure === 'true') tls.verify = false;

  const networkEndpoint =
    str(entry, 'network_endpoint_override') ?? str(entry, 'endpoint_override') ?? authStr('endpoint');
  if (networkEndpoint !== undefined && !/^https?:\/\//.test(networkEndpoint)) {
    throw new CloudConfigError(
      `${key('network_endpoint_override')} "${networkEndpoint}" is not an http(s) URL`,
      'write the Neutron URL, e.g. http://127.0.0.1:9696',
    );
  }
  const authTypeRaw =
    str(entry, 'auth_type') ?? (authStr('auth_url') === undefined && networkEndpoint ? 'none' : 'password');
  let authType = AUTH_TYPES[authTypeRaw];
  if (authType === undefined) {
    throw new CloudConfigError(
      `${key('auth_type')} "${authTypeRaw}" is not supported`,
      'use password, v3applicationcredential, token or none',
    );
  }
  if (authTypeRaw === 'password' && authStr('application_credential_secret') && !authStr('password')) {
    authType = 'v3applicationcredential';
  }
  const base = {
    name,
    source,
    authType,
    interface: iface as EndpointInterface,
    tls,
    ...(str(entry, 'region_name') ? { regionName: str(entry, 'region_name') as string } : {}),
    ...(networkEndpoint ? { networkEndpoint } : {}),
  };
  if (authType === 'none') {
    if (!networkEndpoint) {
      throw new CloudConfigError(
        `${key('auth_type')} is none but no Neutron endpoint is given`,
        'set network_endpoint_override (or OS_NETWORK_ENDPOINT_OVERRIDE) to the Neutron URL',
      );
    }
    return base;
  }

  const authUrl = authStr('auth_url');
  if (!authUrl) {
    throw new CloudConfigError(
      `${key('auth.auth_url')} is missing`,
      'set auth_url to the Keystone URL (e.g. https://keystone.example.com:5000/v3)',
    );
  }
  if (!/^https?:\/\//.test(authUrl)) {
    throw new CloudConfigError(
      `${key('auth.auth_url')} "${authUrl}" is not an http(s) URL`,
      'write the Keystone URL, e.g. https://keystone.example.com:5000/v3',
    );
  }
  const auth: KeystoneAuthOptions = { authUrl };
  const set = <K extends keyof KeystoneAuthOptions>(k: K, v: KeystoneAuthOptions[K] | undefined) => {
    if (v !== undefined) auth[k] = v;
  };
  set('username', authStr('username'));
  set('userId', authStr('user_id'));
  set('userDomainName', authStr('user_domain_name') ?? authStr('domain_name') ?? authStr('default_domain'));
  set('userDomainId', authStr('user_domain_id') ?? authStr('domain_id'));
  set('projectName', authStr('project_name') ?? authStr('tenant_name'));
  set('projectId', authStr('project_id') ?? authStr('tenant_id'));
  set(
    'projectDomainName',
    authStr('project_domain_name') ?? authStr('domain_name') ?? authStr('default_domain'),
  );
  set('projectDomainId', authStr('project_domain_id') ?? authStr('domain_id'));
  const secret = (k: string) => {
    const v = authStr(k);
    return v === undefined ? undefined : new Secret(v);
  };
  set('password', secret('password'));
  set('applicationCredentialId', authStr('application_credential_id'));
  set('applicationCredentialName', authStr('application_credential_name'));
  set('applicationCredentialSecret', secret('application_credential_secret'));
  set('token', secret('token'));

  const need = (ok: boolean, what: string, fix: string) => {
    if (!ok) throw new CloudConfigError(`${name}: ${what} is missing (from ${source})`, fix);
  };
  const hasScope = auth.projectId !== undefined || auth.projectName !== undefined;
  if (authType === 'password') {
    need(
      auth.password !== undefined,
      'auth.password',
      'set password in clouds.yaml or secure.yaml (or OS_PASSWORD)',
    );
    need(
      auth.username !== undefined || auth.userId !== undefined,
      'auth.username',
      'set username or user_id (or OS_USERNAME)',
    );
    need(
      hasScope,
      'auth.project_name',
      'set project_name or project_id: Neutron needs a project-scoped token',
    );
  } else if (authType === 'v3applicationcredential') {
    need(
      auth.applicationCredentialSecret !== undefined,
      'auth.application_credential_secret',
      'set application_credential_secret (or OS_APPLICATION_CREDENTIAL_SECRET)',
    );
    need(
      auth.applicationCredentialId !== undefined ||
        (auth.applicationCredentialName !== undefined &&
          (auth.username !== undefined || auth.userId !== undefined)),
      'auth.application_credential_id',
      'set application_credential_id, or application_credential_name together with username/user_id',
    );
  } else if (authType === 'token') {
    need(auth.token !== undefined, 'auth.token', 'set token (or OS_TOKEN)');
    need(
      hasScope,
      'auth.project_name',
      'set project_name or project_id: Neutron needs a project-scoped token',
    );
  }
  return { ...base, auth };
}
