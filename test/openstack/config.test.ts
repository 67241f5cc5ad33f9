// clouds.yaml / secure.yaml / OS_* discovery (pure logic: files in a temporary directory).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { loadCloudConfig, type LoadCloudOptions } from '../../src/openstack/config.js';
import { CloudConfigError } from '../../src/openstack/errors.js';

let root = '';
let cwd = '';
let home = '';
let etc = '';
const opts = (env: NodeJS.ProcessEnv, extra: Partial<LoadCloudOptions> = {}): LoadCloudOptions => ({
  env,
  cwd,
  home,
  etcDir: etc,
  ...extra,
});

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'weft-clouds-'));
  cwd = join(root, 'cwd');
  home = join(root, 'home');
  etc = join(root, 'etc');
  for (const d of [cwd, join(home, '.config', 'openstack'), etc]) await mkdir(d, { recursive: true });
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

const cloudYaml = (name: string, url: string, extra = '') => `clouds:
  ${name}:
    auth:
      auth_url: ${url}
      username: alice
      project_name: demo
      user_domain_name: Default
      project_domain_name: Default
${extra}    region_name: RegionOne
`;

test('search order: OS_CLIENT_CONFIG_FILE, ./clouds.yaml, ~/.config/openstack, /etc/openstack; first found wins', async () => {
  await writeFile(
    join(etc, 'clouds.yaml'),
    cloudYaml('c', 'https://etc.example:5000/v3', '      password: p\n'),
  );
  assert.equal(loadCloudConfig(opts({ OS_CLOUD: 'c' })).auth?.authUrl, 'https://etc.example:5000/v3');
  await writeFile(
    join(home, '.config', 'openstack', 'clouds.yaml'),
    cloudYaml('c', 'https://home.example/v3', '      password: p\n'),
  );
  assert.equal(loadCloudConfig(opts({ OS_CLOUD: 'c' })).auth?.authUrl, 'https://home.example/v3');
  await writeFile(join(cwd, 'clouds.yaml'), cloudYaml('c', 'https://cwd.example/v3', '      password: p\n'));
  const c = loadCloudConfig(opts({ OS_CLOUD: 'c' }));
  assert.equal(c.auth?.authUrl, 'https://cwd.example/v3');
  assert.equal(c.source, join(cwd, 'clouds.yaml'));
  const explicit = join(root, 'explicit.yaml');
  await writeFile(explicit, cloudYaml('c', 'https://explicit.example/v3', '      password: p\n'));
  assert.equal(
    loadCloudConfig(opts({ OS_CLOUD: 'c', OS_CLIENT_CONFIG_FILE: explicit })).auth?.authUrl,
    'https://explicit.example/v3',
  );
  // the first file found wins even when it lacks the cloud (no fall-through to later files)
  assert.throws(
    () => loadCloudConfig(opts({ OS_CLOUD: 'other' })),
    (e: unknown) =>
      e instanceof CloudConfigError &&
      /cloud "other" is not in .*cwd\/clouds.yaml \(it defines: c\)/.test(e.message),
  );
});

test('secure.yaml is deep-merged over clouds.yaml and its password never prints', async () => {
  await writeFile(join(cwd, 'clouds.yaml'), cloudYaml('s', 'https://k.example/v3'));
  await writeFile(
    join(home, '.config', 'openstack', 'secure.yaml'),
    'clouds:\n  s:\n    auth:\n      password: hunter2-secret\n',
  );
  const c = loadCloudConfig(opts({ OS_CLOUD: 's' }));
  assert.equal(c.auth?.password?.reveal(), 'hunter2-secret');
  assert.equal(c.auth?.username, 'alice'); // kept from clouds.yaml
  assert.equal(c.regionName, 'RegionOne');
  const printed = [
    JSON.stringify(c),
    inspect(c, { depth: 10 }),
    String(c.auth?.password),
    `${c.auth?.password}`,
  ].join('\n');
  assert.doesNotMatch(printed, /hunter2/);
  await rm(join(home, '.config', 'openstack', 'secure.yaml'));
});

test('application credential, auth_type none with an endpoint override, /v2.0 and interface', async () => {
  await writeFile(
    join(cwd, 'clouds.yaml'),
    `clouds:
  ac:
    auth_type: v3applicationcredential
    auth:
      auth_url: https://k.example:5000
      application_credential_id: abc
      application_credential_secret: s3cr3t
    interface: internal
  fixture:
    auth_type: none
    network_endpoint_override: http://127.0.0.1:9696/v2.0
`,
  );
  const ac = loadCloudConfig(opts({ OS_CLOUD: 'ac' }));
  assert.equal(ac.authType, 'v3applicationcredential');
  assert.equal(ac.interface, 'internal');
  assert.equal(ac.auth?.applicationCredentialId, 'abc');
  const fx = loadCloudConfig(opts({ OS_CLOUD: 'fixture' }));
  assert.equal(fx.authType, 'none');
  assert.equal(fx.networkEndpoint, 'http://127.0.0.1:9696/v2.0');
});

test('OS_* variables make the "envvars" cloud (renamable with OS_CLOUD_NAME)', () => {
  const env = {
    OS_AUTH_URL: 'https://k.example/v3',
    OS_USERNAME: 'bob',
    OS_PASSWORD: 'pw-from-env',
    OS_PROJECT_ID: 'p1',
    OS_REGION_NAME: 'R2',
    OS_INTERFACE: 'admin',
  };
  const c = loadCloudConfig(opts(env));
  assert.equal(c.name, 'envvars');
  assert.equal(c.source, 'environment');
  assert.deepEqual(
    [c.auth?.username, c.auth?.projectId, c.regionName, c.interface],
    ['bob', 'p1', 'R2', 'admin'],
  );
  assert.equal(loadCloudConfig(opts({ ...env, OS_CLOUD_NAME: 'mine' })).name, 'mine');
  const none = loadCloudConfig(
    opts({ OS_AUTH_TYPE: 'none', OS_NETWORK_ENDPOINT_OVERRIDE: 'http://127.0.0.1:9696' }),
  );
  assert.equal(none.authType, 'none');
});

/** Every failure is one line: the cause, then the fix in parentheses. */
function oneLine(fn: () => unknown, re: RegExp, hintRe: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CloudConfigError, `not a CloudConfigError: ${String(e)}`);
    const line = e.oneLine();
    assert.doesNotMatch(line, /\n/);
    assert.match(line, re);
    assert.match(e.hint ?? '', hintRe);
    return true;
  });
}

test('bad input gives one clear line naming the cause and the fix', async () => {
  const none = join(root, 'empty');
  await mkdir(none, { recursive: true });
  const emptyOpts = (env: NodeJS.ProcessEnv) => ({ env, cwd: none, home: none, etcDir: none });
  oneLine(
    () => loadCloudConfig(emptyOpts({ OS_CLOUD: 'prod' })),
    /cloud "prod" requested but no clouds.yaml found/,
    /create clouds.yaml|OS_CLIENT_CONFIG_FILE/,
  );
  oneLine(() => loadCloudConfig(emptyOpts({})), /no OpenStack cloud selected/, /OS_CLOUD/);

  await writeFile(join(cwd, 'clouds.yaml'), 'clouds:\n  a:\n    auth:\n      auth_url: [unclosed\n');
  oneLine(
    () => loadCloudConfig(opts({ OS_CLOUD: 'a' })),
    /clouds.yaml:\d+:\d+: not valid YAML/,
    /YAML syntax/,
  );

  await writeFile(join(cwd, 'clouds.yaml'), '- just\n- a list\n');
  oneLine(
    () => loadCloudConfig(opts({ OS_CLOUD: 'a' })),
    /must be a mapping with a "clouds:" key/,
    /clouds:/,
  );

  await writeFile(join(cwd, 'clouds.yaml'), 'regions: []\n');
  oneLine(() => loadCloudConfig(opts({ OS_CLOUD: 'a' })), /no "clouds:" key/, /clouds:/);

  await writeFile(join(cwd, 'clouds.yaml'), cloudYaml('a', 'https://k.example/v3'));
  oneLine(
    () => loadCloudConfig(opts({ OS_CLOUD: 'b' })),
    /cloud "b" is not in .* \(it defines: a\)/,
    /OS_CLOUD/,
  );
  oneLine(
    () => loadCloudConfig(opts({ OS_CLOUD: 'a' })),
    /a: auth.password is missing/,
    /secure.yaml|OS_PASSWORD/,
  );

  await writeFile(
    join(cwd, 'clouds.yaml'),
    'clouds:\n  a:\n    auth:\n      username: x\n      password: y\n',
  );
  oneLine(
    () => loadCloudConfig(opts({ OS_CLOUD: 'a' })),
    /clouds.a.auth.auth_url is missing/,
    /Keystone URL/,
  );

  await writeFile(
    join(cwd, 'clouds.yaml'),
    'clouds:\n  a:\n    identity_api_version: 2\n    auth: {auth_url: "https://k/v2.0"}\n',
  );
  oneLine(
    () => loadCloudConfig(opts({ OS_CLOUD: 'a' })),
    /only Keystone v3 is supported/,
    /identity_api_version: 3/,
  );

  await writeFile(
    join(cwd, 'clouds.yaml'),
    'clouds:\n  a:\n    auth_type: kerberos\n    auth: {auth_url: "https://k/v3"}\n',
  );
  oneLine(
    () => loadCloudConfig(opts({ OS_CLOUD: 'a' })),
    /auth_type "kerberos" is not supported/,
    /password, v3applicationcredential/,
  );

  await writeFile(join(cwd, 'clouds.yaml'), 'clouds:\n  a:\n    auth_type: none\n');
  oneLine(
    () => loadCloudConfig(opts({ OS_CLOUD: 'a' })),
    /auth_type is none but no Neutron endpoint/,
    /network_endpoint_override/,
  );
  await rm(join(cwd, 'clouds.yaml'));
});
