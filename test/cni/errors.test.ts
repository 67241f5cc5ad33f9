// weft-cni's error paths: every one is a spec error object on stdout with the spec's code, a non-zero
// exit and no stack trace. All invocations run inside a node netns made for the test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { run } from '../../src/util/exec.js';
import { callRaw, errorOf, makeNetns, makeNode, PLUGIN, type TestNode } from './helpers.js';

/** Runs the plugin with exactly this environment and stdin. */
async function rawRun(node: TestNode, env: Record<string, string>, stdin: string) {
  const r = await run('ip', ['netns', 'exec', node.ns, PLUGIN], {
    env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin', ...env },
    input: stdin,
    allowFailure: true,
  });
  return { exitCode: r.code, stdout: r.stdout, stderr: r.stderr };
}

test('VERSION lists 0.4.0, 1.0.0 and 1.1.0 and echoes the asked version', async (t) => {
  const node = await makeNode(t);
  const out = await rawRun(node, { CNI_COMMAND: 'VERSION' }, '{"cniVersion":"1.0.0"}');
  assert.equal(out.exitCode, 0);
  const v = JSON.parse(out.stdout) as { cniVersion: string; supportedVersions: string[] };
  assert.equal(v.cniVersion, '1.0.0');
  for (const x of ['0.4.0', '1.0.0', '1.1.0']) assert.ok(v.supportedVersions.includes(x), x);
  const empty = JSON.parse((await rawRun(node, { CNI_COMMAND: 'VERSION' }, '')).stdout) as {
    cniVersion: string;
  };
  assert.equal(empty.cniVersion, '1.1.0');
});

test('unsupported or missing cniVersion: code 1; verbs newer than the config version: code 1', async (t) => {
  const node = await makeNode(t);
  const [pod] = await makeNetns(t, 'pod');
  for (const v of ['0.2.0', '2.0.0']) {
    const e = errorOf(await callRaw(node, 'ADD', pod, { config: node.config({ cniVersion: v }) }));
    assert.equal(e.code, 1);
    assert.match(e.msg, new RegExp(`"${v.replace(/\./g, '\\.')}"`));
  }
  const cfg = node.config();
  delete cfg.cniVersion;
  assert.equal(errorOf(await callRaw(node, 'ADD', pod, { config: cfg })).code, 1);
  const check = errorOf(
    await callRaw(node, 'CHECK', pod, { config: node.config({ cniVersion: '0.3.1', prevResult: {} }) }),
  );
  assert.equal(check.code, 1);
  assert.match(check.msg, /CHECK needs cniVersion 0\.4\.0/);
  for (const verb of ['STATUS', 'GC'] as const) {
    const e = errorOf(await callRaw(node, verb, undefined, { config: node.config({ cniVersion: '1.0.0' }) }));
    assert.equal(e.code, 1, verb);
    assert.equal(e.cniVersion, '1.0.0');
  }
});

test('garbage, truncated, empty or non-object stdin: code 6 with a specific message', async (t) => {
  const node = await makeNode(t);
  const env = { CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c1', CNI_IFNAME: 'eth0' };
  const cases: [string, RegExp][] = [
    ['hello world', /not valid JSON/],
    ['{"cniVersion":"1.1.0","name":"we', /not valid JSON/],
    ['', /no network configuration on stdin/],
    ['[1,2]', /must be a JSON object, got an array/],
  ];
  for (const [stdin, re] of cases) {
    const e = errorOf(await rawRun(node, env, stdin));
    assert.equal(e.code, 6, stdin);
    assert.match(e.msg, re);
  }
});

test('missing or invalid CNI_* variables: code 4, naming them', async (t) => {
  const node = await makeNode(t);
  const cfg = JSON.stringify(node.config());
  let e = errorOf(await rawRun(node, {}, cfg));
  assert.equal(e.code, 4);
  assert.match(e.msg, /\[CNI_COMMAND\] missing/);
  e = errorOf(await rawRun(node, { CNI_COMMAND: 'ADD', CNI_IFNAME: 'eth0' }, cfg));
  assert.equal(e.code, 4);
  assert.match(e.msg, /\[CNI_CONTAINERID, CNI_NETNS\] missing/);
  e = errorOf(await rawRun(node, { CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c1' }, cfg));
  assert.match(e.msg, /\[CNI_IFNAME\] missing/);
  e = errorOf(await rawRun(node, { CNI_COMMAND: 'FROB' }, cfg));
  assert.equal(e.code, 4);
  assert.match(e.msg, /CNI_COMMAND=FROB/);
  e = errorOf(
    await rawRun(node, { CNI_COMMAND: 'DEL', CNI_CONTAINERID: '-bad id', CNI_IFNAME: 'eth0' }, cfg),
  );
  assert.match(e.msg, /CNI_CONTAINERID/);
  e = errorOf(await rawRun(node, { CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c1', CNI_IFNAME: 'a/b' }, cfg));
  assert.match(e.msg, /CNI_IFNAME/);
});

test('a bad netns path: code 4 naming CNI_NETNS (missing file, not a namespace)', async (t) => {
  const node = await makeNode(t);
  let e = errorOf(
    await callRaw(node, 'ADD', undefined, { containerId: 'c1', netnsPath: '/run/netns/wcni-no-such-ns' }),
  );
  assert.equal(e.code, 4);
  assert.match(e.msg, /CNI_NETNS=\/run\/netns\/wcni-no-such-ns: cannot open the network namespace: ENOENT/);
  const file = `${node.dir}/not-a-netns`;
  await writeFile(file, '');
  e = errorOf(await callRaw(node, 'ADD', undefined, { containerId: 'c1', netnsPath: file }));
  assert.equal(e.code, 4);
  assert.match(e.msg, /is not a network namespace/);
  e = errorOf(await callRaw(node, 'ADD', undefined, { containerId: 'c1', netnsPath: 'relative/ns' }));
  assert.match(e.msg, /not an absolute path/);
});

test('invalid network configuration: code 7 naming the field; ipam: code 2 with key and value', async (t) => {
  const node = await makeNode(t);
  const [pod] = await makeNetns(t, 'pod');
  const cases: [Record<string, unknown>, number, RegExp][] = [
    [{ name: undefined }, 7, /no "name"/],
    [{ name: 'bad name!' }, 7, /name "bad name!" is invalid/],
    [{ mtu: 'big' }, 7, /mtu must be an integer/],
    [{ mtu: 100 }, 7, /mtu must be an integer between 576/],
    [{ isDefaultGateway: 'yes' }, 7, /isDefaultGateway must be true or false/],
    [{ dataDir: 'relative' }, 7, /dataDir must be an absolute path/],
    [{ bridge: 'this-name-is-too-long' }, 7, /bridge .* not a valid interface name/],
    [{ runtimeConfig: { mac: 'zz' } }, 7, /requested MAC "zz"/],
    [{ ipam: { type: 'host-local' } }, 2, /unsupported field "ipam": \{"type":"host-local"\}/],
  ];
  for (const [extra, code, re] of cases) {
    const e = errorOf(await callRaw(node, 'ADD', pod, { config: node.config(extra) }));
    assert.equal(e.code, code, JSON.stringify(extra));
    assert.match(e.msg, re);
  }
});

test('CNI_ARGS: unknown keys are an error (code 4) unless IgnoreUnknown=1; malformed pairs too', async (t) => {
  const node = await makeNode(t);
  const [pod] = await makeNetns(t, 'pod');
  let e = errorOf(await callRaw(node, 'ADD', pod, { args: 'FOO=bar' }));
  assert.equal(e.code, 4);
  assert.match(e.msg, /CNI_ARGS: unknown args \[FOO\]/);
  e = errorOf(await callRaw(node, 'ADD', pod, { args: 'novalue' }));
  assert.match(e.msg, /CNI_ARGS: invalid pair "novalue"/);
  const ok = await callRaw(node, 'ADD', pod, {
    args: 'IgnoreUnknown=1;FOO=bar;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web',
  });
  assert.equal(ok.exitCode, 0, ok.stdout);
});

test('ADD without subnet.env: code 11 naming the file; a malformed one: code 102', async (t) => {
  const node = await makeNode(t);
  const [pod] = await makeNetns(t, 'pod');
  await rm(node.subnetFile);
  let e = errorOf(await callRaw(node, 'ADD', pod));
  assert.equal(e.code, 11);
  assert.ok(e.msg.includes(node.subnetFile) && /ENOENT/.test(e.msg), e.msg);
  assert.match(e.details ?? '', /weft agent/);
  await writeFile(node.subnetFile, 'FLANNEL_NETWORK=10.244.0.0/16\n');
  e = errorOf(await callRaw(node, 'ADD', pod));
  assert.equal(e.code, 102);
  assert.match(e.msg, /missing FLANNEL_SUBNET/);
  // Nothing was created in the node: the bridge only comes after the subnet file was read.
  const r = await run('ip', ['-n', node.ns, '-o', 'link', 'show'], {});
  assert.doesNotMatch(r.stdout, /weft0/);
});

test('STATUS: 50 without a lease (no or unparsable subnet.env), success with one', async (t) => {
  const node = await makeNode(t);
  const ok = await callRaw(node, 'STATUS', undefined);
  assert.equal(ok.exitCode, 0);
  assert.equal(ok.stdout, '');
  await writeFile(node.subnetFile, 'garbage\n');
  let e = errorOf(await callRaw(node, 'STATUS', undefined));
  assert.equal(e.code, 50);
  await rm(node.subnetFile);
  e = errorOf(await callRaw(node, 'STATUS', undefined));
  assert.equal(e.code, 50);
  assert.ok(e.msg.includes(node.subnetFile));
});

test('CHECK without prevResult: code 7', async (t) => {
  const node = await makeNode(t);
  const [pod] = await makeNetns(t, 'pod');
  const e = errorOf(await callRaw(node, 'CHECK', pod));
  assert.equal(e.code, 7);
  assert.match(e.msg, /prevResult/);
});
