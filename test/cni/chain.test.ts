// weft-cni as the first plugin of a conflist, followed by Debian's reference plugins (portmap, tuning,
// bandwidth from /usr/lib/cni), run the way libcni runs a list (invokeConflist): prevResult is passed
// along on ADD, and the ADD's result is given to every plugin on CHECK and DEL. portmap's iptables rules
// live in the node netns made here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { run } from '../../src/util/exec.js';
import { invokeConflist, type CniConflist } from '../../src/cni/invoke.js';
import { httpGet, httpServer, links, makeNetns, makeNode, PLUGIN, sh } from './helpers.js';

const REF = '/usr/lib/cni';

test(
  'conflist weft-cni + portmap + tuning + bandwidth: host port forwards to the pod; CHECK and DEL run the chain',
  { skip: !existsSync(`${REF}/portmap`) && 'reference plugins not installed' },
  async (t) => {
    const node = await makeNode(t);
    const [pod, client] = await makeNetns(t, 'pod', 'client');
    // An underlay link between a client netns and the node netns.
    await run('ip', [
      '-n',
      node.ns,
      'link',
      'add',
      'up0',
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'netns',
      client!,
    ]);
    await run('ip', ['-n', node.ns, '-batch', '-'], {
      input: 'addr add 198.18.0.1/24 dev up0\nlink set up0 up\n',
    });
    await run('ip', ['-n', client!, '-batch', '-'], {
      input: 'addr add 198.18.0.2/24 dev eth0\nlink set eth0 up\nlink set lo up\n',
    });

    // Debian's plugins speak up to 1.0.0: the list uses that version.
    const conflist: CniConflist = {
      cniVersion: '1.0.0',
      name: 'weft',
      plugins: [
        { type: 'weft-cni', subnetFile: node.subnetFile, dataDir: node.dataDir, hairpinMode: true },
        { type: 'portmap', capabilities: { portMappings: true }, snat: true },
        { type: 'tuning', sysctl: { 'net.core.somaxconn': '512' } },
        { type: 'bandwidth', capabilities: { bandwidth: true } },
      ],
    };
    const common = {
      conflist,
      containerId: `ctr-${pod}`,
      netns: `/run/netns/${pod}`,
      ifname: 'eth0',
      hostNetns: node.ns,
      plugins: { 'weft-cni': PLUGIN },
      pluginDirs: [REF],
      capabilityArgs: {
        portMappings: [{ hostPort: 30080, containerPort: 8080, protocol: 'tcp' }],
        bandwidth: { ingressRate: 100_000_000, ingressBurst: 1_000_000 },
      },
    };
    const result = (await invokeConflist({ ...common, command: 'ADD' }))!;
    const ips = result.ips as { address: string }[];
    const podIp = ips[0]!.address.split('/')[0]!;
    assert.match(podIp, /^10\.244\.1\./);
    assert.equal((result.interfaces as unknown[]).length, 3);

    // tuning applied its sysctl in the pod; bandwidth put a tbf qdisc on the host veth.
    assert.equal(
      (await sh('ip', ['netns', 'exec', pod!, 'cat', '/proc/sys/net/core/somaxconn'])).trim(),
      '512',
    );
    const hostVeth = (result.interfaces as { name: string }[])[1]!.name;
    assert.match(await sh('tc', ['-n', node.ns, 'qdisc', 'show', 'dev', hostVeth]), /tbf/);

    // portmap: the client reaches the pod's listener through the node's address and host port.
    await httpServer(t, pod!, '0.0.0.0', 8080, 'hello-from-pod');
    assert.equal(await httpGet(client!, '198.18.0.1', 30080), 'hello-from-pod');

    // CHECK runs every plugin but portmap: Debian's portmap 1.1.1 fails CHECK for IPv4-only pods (it looks
    // for ip6tables chains it never made: containernetworking/plugins#819, fixed in later releases).
    const checkList = { ...conflist, plugins: conflist.plugins.filter((p) => p.type !== 'portmap') };
    await invokeConflist({ ...common, conflist: checkList, command: 'CHECK', prevResult: result });

    await invokeConflist({ ...common, command: 'DEL', prevResult: result });
    assert.equal(await httpGet(client!, '198.18.0.1', 30080), undefined);
    assert.equal((await links(node.ns, hostVeth)).length, 0);
    const nat = await run('ip', ['netns', 'exec', node.ns, 'iptables', '-t', 'nat', '-S'], {
      allowFailure: true,
    });
    assert.doesNotMatch(nat.stdout, /30080/);
    // A second DEL of the whole chain succeeds too.
    await invokeConflist({ ...common, command: 'DEL', prevResult: result });
  },
);
