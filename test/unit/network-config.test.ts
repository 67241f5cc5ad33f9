import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseNetworkConfig } from '../../src/config/network-config.js';
import { formatIPv4 } from '../../src/util/ipv4.js';
import { ConfigError } from '../../src/util/errors.js';

const bad = (text: string, field: string, re: RegExp) => {
  assert.throws(
    () => parseNetworkConfig(text),
    (e: unknown) => e instanceof ConfigError && e.field === field && re.test(e.message),
  );
};

test('Flannel defaults: SubnetLen 24 for a /16, first subnet skipped, vxlan VNI 1 port 8472', () => {
  const c = parseNetworkConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}');
  assert.equal(c.subnetLen, 24);
  assert.equal(formatIPv4(c.subnetMin), '10.244.1.0');
  assert.equal(formatIPv4(c.subnetMax), '10.244.255.0');
  assert.deepEqual([c.backend.type, c.backend.vni, c.backend.port], ['vxlan', 1, 8472]);
});

test('field names are case-insensitive, as in Flannel', () => {
  const c = parseNetworkConfig('{"network":"10.10.0.0/20","subnetlen":26,"backend":{"type":"host-gw"}}');
  assert.equal(c.subnetLen, 26);
  assert.equal(c.backend.type, 'host-gw');
});

test('SubnetLen defaults to prefix+2 for small networks', () => {
  assert.equal(parseNetworkConfig('{"Network":"10.0.0.0/24"}').subnetLen, 26);
});

test('bad input names the field and the problem', () => {
  bad('{"Network": "10.244.0.0/16", ', 'config', /not valid JSON/);
  bad('[]', 'config', /must be a JSON object/);
  bad('{}', 'Network', /missing/);
  bad('{"Network":"10.244.0.0/33"}', 'Network', /not an IPv4 CIDR/);
  bad('{"Network":"10.244.1.0/16"}', 'Network', /host bits/);
  bad('{"Network":"10.0.0.0/24","SubnetLen":25}', 'Network', /too small for SubnetLen 25/);
  bad('{"Network":"10.0.0.0/29"}', 'Network', /too small/);
  bad('{"Network":"10.244.0.0/16","SubnetLen":31}', 'SubnetLen', /out of range/);
  bad('{"Network":"10.244.0.0/16","SubnetLen":8}', 'SubnetLen', /out of range/);
  bad('{"Network":"10.244.0.0/16","SubnetLen":"24"}', 'SubnetLen', /integer/);
  bad(
    '{"Network":"10.244.0.0/16","Backend":{"Type":"bogus"}}',
    'Backend.Type',
    /unknown backend type "bogus"/,
  );
  bad('{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","VNI":0}}', 'Backend.VNI', /out of range/);
  bad('{"Network":"10.244.0.0/16","SubnetMin":"10.245.0.0"}', 'SubnetMin', /outside Network/);
  bad('{"Network":"10.244.0.0/16","SubnetMax":"10.244.3.7"}', 'SubnetMax', /boundary/);
});
