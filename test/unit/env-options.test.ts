// Agent options from the environment, as flanneld takes them: --foo-bar as WEFT_FOO_BAR or
// FLANNELD_FOO_BAR; the flag wins, then WEFT_, then FLANNELD_, then the default.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Command, Option } from 'commander';
import { applyEnvOptions } from '../../src/cli/env-options.js';

function parse(argv: string[], env: NodeJS.ProcessEnv): Record<string, unknown> {
  let seen: Record<string, unknown> = {};
  const collect = (v: string, prev: string[]) => [...prev, ...v.split(',').filter(Boolean)];
  const cmd = new Command('agent')
    .exitOverride()
    .option('--etcd-endpoints <urls>', '', 'http://127.0.0.1:2379')
    .option('--iface <name>', '', collect, [])
    .option('--ip-masq', '', false)
    .option('--no-cni-server', '')
    .addOption(new Option('--log-level <level>').choices(['info', 'debug']).default('info'))
    .hook('preAction', (c) => applyEnvOptions(c, ['WEFT', 'FLANNELD'], env))
    .action((o: Record<string, unknown>) => void (seen = o));
  cmd.parse(argv, { from: 'user' });
  return seen;
}

test('flag > WEFT_ > FLANNELD_ > default, for strings, lists, booleans, negations and choices', () => {
  assert.equal(parse([], {}).etcdEndpoints, 'http://127.0.0.1:2379');
  assert.equal(parse([], { FLANNELD_ETCD_ENDPOINTS: 'http://f:2379' }).etcdEndpoints, 'http://f:2379');
  assert.equal(
    parse([], { FLANNELD_ETCD_ENDPOINTS: 'http://f:2379', WEFT_ETCD_ENDPOINTS: 'http://w:2379' })
      .etcdEndpoints,
    'http://w:2379',
  );
  assert.equal(
    parse(['--etcd-endpoints', 'http://flag:2379'], { WEFT_ETCD_ENDPOINTS: 'http://w:2379' }).etcdEndpoints,
    'http://flag:2379',
  );
  assert.deepEqual(parse([], { FLANNELD_IFACE: 'eth1,eth0' }).iface, ['eth1', 'eth0']);
  assert.deepEqual(parse(['--iface', 'eth2'], { FLANNELD_IFACE: 'eth1' }).iface, ['eth2']);
  assert.equal(parse([], { FLANNELD_IP_MASQ: 'true' }).ipMasq, true);
  assert.equal(parse([], { FLANNELD_IP_MASQ: 'false', WEFT_IP_MASQ: '1' }).ipMasq, true);
  assert.equal(parse([], {}).cniServer, true);
  assert.equal(parse([], { WEFT_NO_CNI_SERVER: 'true' }).cniServer, false);
  assert.equal(parse([], { FLANNELD_LOG_LEVEL: 'debug' }).logLevel, 'debug');
  assert.throws(
    () => parse([], { FLANNELD_LOG_LEVEL: 'loud' }),
    /FLANNELD_LOG_LEVEL="loud" is not one of info, debug/,
  );
  assert.throws(() => parse([], { FLANNELD_IP_MASQ: 'maybe' }), /FLANNELD_IP_MASQ="maybe" is not a boolean/);
});
