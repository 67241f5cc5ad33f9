// The public interface is chosen with flanneld's precedence: --iface (name or address), then
// --iface-regex (addresses first, in interface order, then names), then --iface-can-reach (the route's
// interface and source address), else the default route. Checked inside a scratch namespace with two
// addressed veth pairs and an unaddressed one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import type { IfaceSelection } from '../../src/agent/iface.js';
import { run } from '../../src/util/exec.js';
import { inNs, uniqueName } from '../helpers/lab.js';

const IFACE = fileURLToPath(new URL('../../src/agent/iface.js', import.meta.url));

test('iface, iface-regex and iface-can-reach choose the interface and address as flanneld does', async (t) => {
  const ns = `wt-${uniqueName('i')}`;
  await run('ip', ['netns', 'add', ns]);
  t.after(() => run('ip', ['netns', 'del', ns], { allowFailure: true }));
  await run('ip', ['-n', ns, '-batch', '-'], {
    input: [
      'link set lo up',
      'link add pa type veth peer name pa-peer',
      'link add pb type veth peer name pb-peer',
      'link add pc type veth peer name pc-peer',
      'addr add 10.96.1.1/24 dev pa',
      'addr add 10.96.2.1/24 dev pb',
      'addr add 10.96.3.1/24 dev pb',
      ...['pa', 'pa-peer', 'pb', 'pb-peer', 'pc', 'pc-peer'].map((d) => `link set ${d} up`),
      'route add 10.95.0.0/16 via 10.96.2.254 dev pb src 10.96.3.1',
    ].join('\n'),
  });

  /** selectPublicInterface inside the namespace: "name ip", or the error line. */
  const choose = async (sel: Partial<IfaceSelection>, publicIp?: string): Promise<string> => {
    const script = `import(${JSON.stringify(IFACE)}).then(async (m) => {
      try { const i = await m.selectPublicInterface(${JSON.stringify({ ifaces: [], ...sel })}, ${JSON.stringify(publicIp)});
        const ip = [i.ip >>> 24, (i.ip >>> 16) & 255, (i.ip >>> 8) & 255, i.ip & 255].join('.');
        console.log(i.name + ' ' + ip); }
      catch (e) { console.log('error: ' + e.message + (e.hint ? ' (' + e.hint + ')' : '')); } })`;
    const r = await inNs(ns, [process.execPath, '-e', script]);
    return r.stdout.trim() || r.stderr.trim();
  };

  // --iface: a name (its first address), or an address (that address).
  assert.equal(await choose({ ifaces: ['pb'] }), 'pb 10.96.2.1');
  assert.equal(await choose({ ifaces: ['10.96.3.1'] }), 'pb 10.96.3.1');
  assert.equal(
    await choose({ ifaces: ['nope', 'pc', 'pa'] }),
    'pa 10.96.1.1',
    'missing and unaddressed ones are skipped',
  );
  // --iface comes before --iface-regex, which comes before --iface-can-reach.
  assert.equal(await choose({ ifaces: ['pb'], ifaceRegex: ['^10\\.96\\.1\\.'] }), 'pb 10.96.2.1');
  assert.equal(
    await choose({ ifaces: ['nope'], ifaceRegex: ['^10\\.96\\.1\\.'], ifaceCanReach: '10.95.0.9' }),
    'pa 10.96.1.1',
  );
  // --iface-regex: addresses first, in interface order, the matching address wins; then names.
  assert.equal(await choose({ ifaceRegex: ['^10\\.96\\.'] }), 'pa 10.96.1.1');
  assert.equal(await choose({ ifaceRegex: ['\\.3\\.1$'] }), 'pb 10.96.3.1');
  assert.equal(await choose({ ifaceRegex: ['^pb$'] }), 'pb 10.96.2.1');
  assert.equal(
    await choose({ ifaceRegex: ['^zz', '^p[ab]$'] }),
    'pa 10.96.1.1',
    'the next regex after one that matches nothing',
  );
  // --iface-can-reach: the route's interface and its source address.
  assert.equal(await choose({ ifaceCanReach: '10.95.0.9' }), 'pb 10.96.3.1');
  assert.equal(await choose({ ifaceCanReach: '10.96.1.77' }), 'pa 10.96.1.1');
  // --public-ip still overrides the published address.
  assert.equal(await choose({ ifaceRegex: ['^pa$'] }, '10.94.0.1'), 'pa 10.94.0.1');
  // Nothing matches: one line naming what was asked and what is there.
  assert.match(
    await choose({ ifaces: ['pc'], ifaceRegex: ['^zz'], ifaceCanReach: '10.93.0.1' }),
    /^error: no interface with an IPv4 address matches --iface pc, --iface-regex \^zz, --iface-can-reach 10\.93\.0\.1 \(interfaces here: .*pa \[10\.96\.1\.1\].*pb \[10\.96\.2\.1 10\.96\.3\.1\]/,
  );
  assert.match(
    await choose({ ifaceRegex: ['('] }),
    /^error: --iface-regex: "\(" is not a valid regular expression/,
  );
  // No selector and no default route here.
  assert.match(await choose({}), /^error: no default route to choose the public interface from/);
});
