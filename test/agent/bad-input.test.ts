import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../../src/util/exec.js';
import { inNs } from '../helpers/lab.js';
import { scratchNamespace } from './scratch.js';

const WEFT = fileURLToPath(new URL('../../src/cli/weft.js', import.meta.url));

/**
 * The agent runs inside a scratch namespace with its own etcd on that namespace's loopback, so a
 * config that is accidentally accepted could only ever touch the scratch namespace.
 */
test(
  'bad input: the agent exits non-zero with one line naming the field and the problem',
  { timeout: 120_000 },
  async (t) => {
    const { ns, dir, etcd, putConfig: put } = await scratchNamespace(t, 'a');
    const agent = (extra: string[] = [], endpoint = etcd.endpoint) =>
      inNs(
        ns,
        [
          process.execPath,
          WEFT,
          'agent',
          `--etcd-endpoints=${endpoint}`,
          '--iface=lo',
          `--subnet-file=${dir}/subnet.env`,
          `--status-socket=${dir}/agent.sock`,
          ...extra,
        ],
        { timeoutMs: 20_000 },
      );

    const cases: [string, string, RegExp][] = [
      ['malformed JSON', '{"Network": "10.244.0.0/16", ', /^weft agent: config: not valid JSON/],
      [
        'Network too small for SubnetLen',
        '{"Network":"10.0.0.0/24","SubnetLen":25}',
        /^weft agent: Network: 10\.0\.0\.0\/24 is too small for SubnetLen 25/,
      ],
      [
        'SubnetLen out of range',
        '{"Network":"10.244.0.0/16","SubnetLen":31}',
        /^weft agent: SubnetLen: 31 is out of range/,
      ],
      [
        'unknown backend type',
        '{"Network":"10.244.0.0/16","Backend":{"Type":"udpx"}}',
        /^weft agent: Backend\.Type: unknown backend type "udpx"/,
      ],
    ];
    // A node interface inside the scratch namespace, for the cases that get past the config.
    await run('ip', ['-n', ns, 'link', 'add', 'e0', 'type', 'veth', 'peer', 'name', 'e1']);
    await run('ip', ['-n', ns, 'addr', 'add', '198.18.0.5/24', 'dev', 'e0']);
    await run('ip', ['-n', ns, 'link', 'set', 'e0', 'up']);
    await writeFile(join(dir, 'bad.yaml'), 'clouds: [oops\n');
    const neutronCfg = '{"Network":"10.244.0.0/16","Backend":{"Type":"neutron"}}';
    const cloudCases: [string, string, RegExp, string[]][] = [
      [
        'neutron backend, missing clouds.yaml',
        neutronCfg,
        /^weft agent: .*clouds\.yaml/,
        ['--iface=e0', `--cloud-config=${dir}/nope.yaml`, '--cloud=lab'],
      ],
      [
        'neutron backend, malformed clouds.yaml',
        neutronCfg,
        /^weft agent: .*bad\.yaml/,
        ['--iface=e0', `--cloud-config=${dir}/bad.yaml`, '--cloud=lab'],
      ],
    ];
    for (const [what, config, re, extra] of [
      ...cases.map((c) => [...c, []] as [string, string, RegExp, string[]]),
      ...cloudCases,
    ]) {
      await t.test(what, async () => {
        await put(config);
        const r = await agent(extra);
        assert.notEqual(r.code, 0);
        const lines = r.stderr.trim().split('\n');
        assert.equal(lines.length, 1, `one line on stderr, got: ${r.stderr}`);
        assert.match(lines[0]!, re);
        assert.doesNotMatch(r.stdout + r.stderr, /\n\s+at /, 'no stack trace');
      });
    }

    await t.test('unreachable etcd: a clear message and retries, not a stack trace', async () => {
      const r = await inNs(ns, [
        'timeout',
        '4',
        process.execPath,
        WEFT,
        'agent',
        '--etcd-endpoints=http://127.0.0.1:1',
        '--iface=lo',
        `--subnet-file=${dir}/subnet.env`,
        `--status-socket=${dir}/agent2.sock`,
      ]);
      const msgs = r.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => (JSON.parse(l) as { msg: string }).msg)
        .filter((m) => m.startsWith('cannot read the network config'));
      assert.ok(msgs.length >= 2, `retried: ${msgs.join(' | ')}`);
      assert.match(msgs[0]!, /etcd at http:\/\/127\.0\.0\.1:1 is unreachable; retrying in 0\.5s/);
      assert.doesNotMatch(r.stdout + r.stderr, /\n\s+at /);
    });
  },
);
