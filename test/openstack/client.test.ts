// The OpenStack client against the real Neutron API (fixture, API-only) and, for the Keystone flow, a
// small token endpoint on 127.0.0.1 written here.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startTestNeutron, makeSubnet, type TestNeutron } from './neutron-fixture.js';
import { freePort } from '../helpers/etcd.js';
import { NeutronClient, type Logger } from '../../src/openstack/neutron.js';
import { KeystoneSession } from '../../src/openstack/keystone.js';
import { loadCloudConfig } from '../../src/openstack/config.js';
import {
  NeutronApiError,
  OpenStackAuthError,
  OpenStackUnreachableError,
} from '../../src/openstack/errors.js';
import { WeftError } from '../../src/util/errors.js';

const PASSWORD = 'correct-horse-S3CRET-' + randomBytes(4).toString('hex');
const AC_SECRET = 'appcred-S3CRET-' + randomBytes(4).toString('hex');

/**
 * Stands in for Keystone, because no Keystone runs on this machine (installing and bootstrapping one
 * needs a database, fernet keys and an Apache/uwsgi setup): it implements only POST /v3/auth/tokens
 * for the password and application-credential methods, as Keystone's API reference describes them
 * (token in X-Subject-Token, expires_at and catalog in the body, 401 for bad credentials).
 *
 * In front of the real Neutron sits a stand-in for keystonemiddleware's auth_token filter (the part of
 * a Keystone-enabled Neutron that checks tokens): it answers 401 for tokens this Keystone did not
 * issue, revoked or expired ones, and forwards everything else to the real (noauth) Neutron.
 */
class FakeKeystone {
  server!: http.Server;
  proxy!: http.Server;
  url = '';
  proxyUrl = '';
  ttlMs = 3600_000;
  issued = new Map<string, number>(); // token -> expiry
  lastBody: unknown;
  requests = 0;
  constructor(private neutronUrl: string) {}

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => this.#token(req, res));
    this.proxy = http.createServer((req, res) => this.#forward(req, res));
    const kp = await freePort();
    const pp = await freePort();
    await new Promise<void>((r) => this.server.listen(kp, '127.0.0.1', r));
    await new Promise<void>((r) => this.proxy.listen(pp, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${kp}`;
    this.proxyUrl = `http://127.0.0.1:${pp}`;
  }
  async stop(): Promise<void> {
    this.server.closeAllConnections();
    this.proxy.closeAllConnections();
    await new Promise((r) => this.server.close(r));
    await new Promise((r) => this.proxy.close(r));
  }
  revokeAll(): void {
    this.issued.clear();
  }

  #token(req: http.IncomingMessage, res: http.ServerResponse): void {
    let data = '';
    req.on('data', (c: Buffer) => (data += c.toString()));
    req.on('end', () => {
      this.requests++;
      const deny = (status: number, message: string) => {
        res.writeHead(status, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ error: { code: status, title: 'Unauthorized', message } }));
      };
      if (req.method !== 'POST' || req.url !== '/v3/auth/tokens')
        return deny(404, 'The resource could not be found.');
      const body = JSON.parse(data) as {
        auth: {
          identity: {
            methods: string[];
            password?: { user: { name?: string; domain?: { name?: string }; password: string } };
            application_credential?: { id?: string; secret: string };
          };
          scope?: { project?: { name?: string; domain?: { name?: string } } };
        };
      };
      this.lastBody = body;
      const id = body.auth.identity;
      let ok = false;
      if (id.methods[0] === 'password' && id.password) {
        const u = id.password.user;
        ok =
          u.name === 'alice' &&
          u.domain?.name === 'Default' &&
          u.password === PASSWORD &&
          body.auth.scope?.project?.name === 'demo';
      } else if (id.methods[0] === 'application_credential' && id.application_credential) {
        if (body.auth.scope) return deny(400, 'scope must not be given with an application credential');
        ok = id.application_credential.id === 'ac-1' && id.application_credential.secret === AC_SECRET;
      }
      if (!ok) return deny(401, 'The request you have made requires authentication.');
      const token = 'gAAAAtok-' + randomBytes(12).toString('hex');
      const expires = Date.now() + this.ttlMs;
      this.issued.set(token, expires);
      res.writeHead(201, { 'Content-Type': 'application/json', 'X-Subject-Token': token });
      res.end(
        JSON.stringify({
          token: {
            expires_at: new Date(expires).toISOString(),
            project: { id: 'p-demo', name: 'demo' },
            catalog: [
              {
                type: 'identity',
                endpoints: [{ interface: 'public', region_id: 'RegionOne', url: this.url + '/v3' }],
              },
              {
                type: 'network',
                name: 'neutron',
                endpoints: [
                  // the catalog entry carries the trailing /v2.0/ some deployments register
                  { interface: 'public', region_id: 'RegionOne', url: this.proxyUrl + '/v2.0/' },
                  { interface: 'internal', region_id: 'RegionOne', url: 'http://127.0.0.1:1' },
                  { interface: 'internal', region_id: 'RegionTwo', url: 'http://127.0.0.1:2/' },
                ],
              },
            ],
          },
        }),
      );
    });
  }

  #forward(req: http.IncomingMessage, res: http.ServerResponse): void {
    const tok = req.headers['x-auth-token'];
    const exp = typeof tok === 'string' ? this.issued.get(tok) : undefined;
    if (exp === undefined || exp < Date.now()) {
      res.writeHead(401, { 'Content-Type': 'application/json' });
      res.end(
        JSON.stringify({
          error: {
            code: 401,
            title: 'Unauthorized',
            message: 'The request you have made requires authentication.',
          },
        }),
      );
      req.resume();
      return;
    }
    const headers = { ...req.headers };
    delete headers['x-auth-token'];
    const up = http.request(this.neutronUrl + (req.url ?? '/'), { method: req.method, headers }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      ur.pipe(res);
    });
    req.pipe(up);
  }
}

let neutron: TestNeutron;
let ks: FakeKeystone;
let dir = '';
const logLines: string[] = [];
const log: Logger = {
  debug: (o, m) => logLines.push(JSON.stringify({ ...o, m })),
  info: (o, m) => logLines.push(JSON.stringify({ ...o, m })),
  warn: (o, m) => logLines.push(JSON.stringify({ ...o, m })),
};
const errorLines: string[] = [];
/** Runs fn, expects a WeftError of class cls; returns its one line (and keeps it for the secrets check). */
async function failsWith(fn: () => Promise<unknown>, cls: new (...a: never[]) => WeftError): Promise<string> {
  try {
    await fn();
  } catch (e) {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${String(e)}`);
    const line = e.oneLine();
    errorLines.push(line, String(e.stack));
    assert.doesNotMatch(line, /\n/, 'one line');
    assert.ok(e.hint, 'names a fix');
    return line;
  }
  assert.fail(`expected ${cls.name}`);
}

before(async () => {
  neutron = await startTestNeutron();
  ks = new FakeKeystone(neutron.url);
  await ks.start();
  dir = await mkdtemp(join(tmpdir(), 'weft-os-'));
  await writeFile(
    join(dir, 'clouds.yaml'),
    `clouds:
  test:
    auth:
      auth_url: ${ks.url}
      username: alice
      project_name: demo
    region_name: RegionOne
  appcred:
    auth_type: v3applicationcredential
    auth:
      auth_url: ${ks.url}/v3/
      application_credential_id: ac-1
  wrong:
    auth:
      auth_url: ${ks.url}/v3
      username: alice
      password: not-the-password-S3CRET
      project_name: demo
  nokeystone:
    auth:
      auth_url: http://127.0.0.1:${await freePort()}/v3
      username: alice
      password: ${PASSWORD}
      project_name: demo
  fixture:
    auth_type: none
    network_endpoint_override: ${neutron.url}/v2.0
`,
  );
  await writeFile(
    join(dir, 'secure.yaml'),
    `clouds:\n  test:\n    auth:\n      password: ${PASSWORD}\n  appcred:\n    auth:\n      application_credential_secret: ${AC_SECRET}\n`,
  );
});
after(async () => {
  await ks?.stop();
  await neutron?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const env = (cloud: string) => ({
  OS_CLOUD: cloud,
  OS_CLIENT_CONFIG_FILE: join(dir, 'clouds.yaml'),
  OS_CLIENT_SECURE_FILE: join(dir, 'secure.yaml'),
});
const fromCloud = (cloud: string) => NeutronClient.fromEnvironment({ env: env(cloud), log, timeoutMs: 5000 });

test('password auth: token from X-Subject-Token, network endpoint from the catalog (/v2.0 normalised), token reused', async () => {
  const c = fromCloud('test');
  const ext = await c.listExtensions();
  assert.ok(
    ext.some((e) => e.alias === 'extraroute-atomic'),
    'real Neutron answered through the catalog endpoint',
  );
  await c.listPorts();
  await c.listPorts();
  assert.equal(c.session?.authCount, 1);
  assert.equal(await c.session?.endpoint('network', 'public', 'RegionOne'), ks.proxyUrl);
});

test('application credential: id + secret, no scope sent', async () => {
  const c = fromCloud('appcred');
  await c.listExtensions();
  const body = ks.lastBody as { auth: { identity: { methods: string[] }; scope?: unknown } };
  assert.deepEqual(body.auth.identity.methods, ['application_credential']);
  assert.equal(body.auth.scope, undefined);
});

test('catalog lookup by interface and region, with clear errors when there is no match', async () => {
  const cfg = loadCloudConfig({ env: env('test') });
  const s = new KeystoneSession(cfg.auth!, { cloudName: 'test' });
  assert.equal(await s.endpoint('network', 'internal', 'RegionOne'), 'http://127.0.0.1:1');
  assert.equal(await s.endpoint('network', 'internal', 'RegionTwo'), 'http://127.0.0.1:2');
  const l1 = await failsWith(() => s.endpoint('network', 'admin', undefined), OpenStackAuthError);
  assert.match(l1, /no admin "network" endpoint/);
  const l2 = await failsWith(() => s.endpoint('network', 'internal', undefined), OpenStackAuthError);
  assert.match(l2, /several regions \(RegionOne, RegionTwo\).*region_name/);
  const l3 = await failsWith(() => s.endpoint('network', 'public', 'RegionNine'), OpenStackAuthError);
  assert.match(l3, /in region RegionNine \(public endpoints exist in: RegionOne\)/);
  assert.equal(s.authCount, 1);
});

test('re-authenticates before expires_at', async () => {
  ks.ttlMs = 1500; // short-lived tokens are renewed at half their life
  try {
    const c = fromCloud('test');
    await c.listExtensions();
    await c.listExtensions();
    assert.equal(c.session?.authCount, 1);
    await new Promise((r) => setTimeout(r, 900));
    await c.listExtensions(); // would be refused by the auth_token stand-in once expired
    assert.equal(c.session?.authCount, 2);
  } finally {
    ks.ttlMs = 3600_000;
  }
});

test('re-authenticates once on a 401, then fails with one line if Neutron still refuses', async () => {
  const c = fromCloud('test');
  await c.listExtensions();
  ks.revokeAll(); // e.g. the token was revoked by the operator
  await c.listExtensions();
  assert.equal(c.session?.authCount, 2);
  // Neutron refusing even a fresh token: exactly one retry, then a clear error
  const orig = ks.issued.set.bind(ks.issued);
  ks.issued.set = (_k: string) => ks.issued; // issue tokens the stand-in does not know
  try {
    ks.revokeAll();
    const line = await failsWith(() => c.listPorts(), OpenStackAuthError);
    assert.match(line, /rejected a freshly issued token of cloud "test" \(401\)/);
    assert.equal(c.session?.authCount, 3);
  } finally {
    ks.issued.set = orig;
  }
});

test('wrong credentials: one line naming Keystone, the cloud and what to check', async () => {
  const line = await failsWith(() => fromCloud('wrong').listExtensions(), OpenStackAuthError);
  assert.match(
    line,
    /^Keystone at http:\/\/127\.0\.0\.1:\d+\/v3\/auth\/tokens rejected the credentials of cloud "wrong" \(401 .*\) \(check username, password/,
  );
});

test('unreachable Keystone or Neutron: one line with the URL, the cause and the fix', async () => {
  const l1 = await failsWith(() => fromCloud('nokeystone').listExtensions(), OpenStackUnreachableError);
  assert.match(
    l1,
    /^Keystone at http:\/\/127\.0\.0\.1:\d+\/v3\/auth\/tokens is unreachable: ECONNREFUSED.*\(nothing listens there/,
  );
  const dead = new NeutronClient({ endpoint: `http://127.0.0.1:${await freePort()}/v2.0/`, timeoutMs: 3000 });
  const l2 = await failsWith(() => dead.listExtensions(), OpenStackUnreachableError);
  assert.match(l2, /^Neutron at http:\/\/127\.0\.0\.1:\d+\/v2\.0\/extensions is unreachable: ECONNREFUSED/);
});

test('auth_type none with an endpoint override talks to Neutron directly', async () => {
  const c = fromCloud('fixture');
  assert.equal(c.session, undefined);
  assert.ok((await c.listExtensions()).length > 10);
});

test('Neutron errors carry NeutronError.type and message; If-Match on a stale revision is a 412', async () => {
  const c = neutron.client;
  const nf = await failsWith(() => c.getPort('00000000-0000-0000-0000-000000000000'), NeutronApiError);
  assert.match(nf, /404 PortNotFound: Port 00000000-0000-0000-0000-000000000000 could not be found/);
  const { networkId, subnetId } = await makeSubnet(c, '10.10.0.0/24');
  const p = await c.createPort({
    network_id: networkId,
    device_owner: 'weft:test',
    fixed_ips: [{ subnet_id: subnetId, ip_address: '10.10.0.5' }],
  });
  await c.updatePort(p.id, { name: 'renamed' }, p.revision_number); // current revision: accepted
  try {
    await c.updatePort(p.id, { name: 'again' }, p.revision_number); // stale now
    assert.fail('stale revision accepted');
  } catch (e) {
    assert.ok(e instanceof NeutronApiError);
    assert.equal(e.status, 412);
    assert.equal(e.type, 'RevisionNumberConstraintFailed');
    assert.match(e.neutronMessage, /Constrained to \d+, but current revision is \d+/);
  }
  // port lookup by fixed IP and by MAC
  assert.deepEqual(
    (await c.listPorts({ ipAddress: '10.10.0.5' })).map((x) => x.id),
    [p.id],
  );
  assert.deepEqual(
    (await c.listPorts({ macAddress: p.mac_address })).map((x) => x.id),
    [p.id],
  );
  assert.deepEqual(await c.listPorts({ ipAddress: '10.10.0.99' }), []);
});

test('credentials and tokens never appear in logs or error messages', () => {
  assert.ok(logLines.length > 10, 'requests were logged');
  const all = [...logLines, ...errorLines].join('\n');
  for (const secret of [PASSWORD, AC_SECRET, 'not-the-password-S3CRET', 'gAAAAtok-']) {
    assert.ok(!all.includes(secret), `${secret} leaked`);
  }
});
