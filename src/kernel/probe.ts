import { run } from '../util/exec.js';

/**
 * What the agent needs to prove that a cloud-routed peer is reachable: an address of its own in its
 * pod subnet to send from (the subnet's .0, which with the VXLAN device lives on that device, and with
 * the neutron backend on the loopback, labelled so that weft knows it is its own), and one ping from it
 * to the peer's .0. A reply has crossed exactly what a pod's packet crosses: this node's port
 * (anti-spoofing), the router or the shared subnet, the peer's port, and back.
 *
 * Every function acts on the calling process's network namespace.
 */

/** The label that marks an address on `lo` as weft's probe address (iproute2 labels are `dev:suffix`). */
export const PROBE_LABEL = 'lo:weft';

interface LoAddr {
  local: string;
  prefixlen: number;
  label?: string;
  family: string;
}

async function probeAddresses(): Promise<string[]> {
  const r = await run('ip', ['-j', 'addr', 'show', 'dev', 'lo'], { allowFailure: true });
  if (r.code !== 0 || r.stdout.trim() === '') return [];
  const links = JSON.parse(r.stdout) as { addr_info?: LoAddr[] }[];
  return (links[0]?.addr_info ?? [])
    .filter((a) => a.family === 'inet' && a.label === PROBE_LABEL)
    .map((a) => `${a.local}/${a.prefixlen}`);
}

/**
 * Makes `address` (a.b.c.d) weft's only probe address on `lo`, or removes every one when undefined.
 * Returns the failures, one line each (empty: done).
 */
export async function setProbeAddress(address: string | undefined): Promise<string[]> {
  const want = address && `${address}/32`;
  const have = await probeAddresses();
  const lines = [
    ...have.filter((a) => a !== want).map((a) => `addr del ${a} dev lo label ${PROBE_LABEL}`),
    ...(want && !have.includes(want) ? [`addr add ${want} dev lo label ${PROBE_LABEL}`] : []),
  ];
  if (lines.length === 0) return [];
  const r = await run('ip', ['-force', '-batch', '-'], {
    input: lines.join('\n') + '\n',
    allowFailure: true,
  });
  return r.code === 0 ? [] : [r.stderr.trim() || `ip -batch exited with ${String(r.code)}`];
}

/** One ICMP echo from `source` to `target`; true when the reply came back within `timeoutSeconds`. */
export async function pingFrom(source: string, target: string, timeoutSeconds = 1): Promise<boolean> {
  const r = await run('ping', ['-n', '-q', '-c', '1', '-W', String(timeoutSeconds), '-I', source, target], {
    allowFailure: true,
    timeoutMs: (timeoutSeconds + 2) * 1000,
  }).catch(() => undefined);
  return r?.code === 0;
}
