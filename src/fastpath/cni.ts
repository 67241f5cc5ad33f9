import { fastPathMissing, runFastPathSync } from '../kernel/bpf.js';
import { describeError } from '../util/errors.js';
import { fastPathGateOpen } from './gate.js';

/**
 * The CNI plugin's side of the BPF fast path: a new pod's entry (pod IP → its host veth and MAC) and
 * the program on its host veth; a deleted pod's entry removed. Only when the fast path is on in the
 * node (the agent's marker): otherwise nothing runs. Never fails a CNI call: a pod the fast path
 * does not know is reached the normal way, and the agent's next resync adds it from the kernel.
 * Returns a warning line for the plugin's log, if any.
 */
export function fastPathPodAdded(pod: { hostVeth: string; ip: string; mac: string }): string | undefined {
  if (!fastPathGateOpen() || fastPathMissing() !== undefined) return undefined;
  try {
    runFastPathSync(['pod-add', pod.hostVeth, pod.ip, pod.mac]);
    return undefined;
  } catch (e) {
    return `BPF fast path: ${describeError(e)}; pod ${pod.ip} is reached the normal way`;
  }
}

export function fastPathPodsRemoved(ips: string[]): string | undefined {
  if (ips.length === 0 || !fastPathGateOpen() || fastPathMissing() !== undefined) return undefined;
  try {
    runFastPathSync(
      ['run'],
      ips.map((ip) => `pod-del ${ip}`),
    ); // one loader run for them all
    return undefined;
  } catch (e) {
    return `BPF fast path: ${describeError(e)}`;
  }
}
