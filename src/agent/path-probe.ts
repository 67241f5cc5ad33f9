import { connect } from 'node:net';

/**
 * One probe of a cloud path, sent by the agent itself (no process spawned, no tool needed): a TCP
 * connection attempt from this node's pod subnet .0 to the peer's .0. Whatever the peer's kernel
 * answers — a SYN-ACK when something listens on the port, a RST when nothing does — has crossed the
 * whole path back, with pod-range addresses both ways: this node's port (anti-spoofing), the router or
 * the shared subnet, the peer's port. Silence until the timeout, or an ICMP error (a router without a
 * route answers "host unreachable"), means the path does not carry pod traffic yet.
 *
 * TCP rather than an ICMP echo: Node.js has no raw or ping sockets, and spawning `ping` per peer per
 * check does not scale (a node of a 1,000-node cluster would start a process per pending peer every
 * few hundred milliseconds) and needs the tool in the agent's image.
 */

/** The discard port: nobody is expected to listen there; a RST answers as well as a SYN-ACK. */
export const PROBE_PORT = 9;

export interface ProbeAnswer {
  answered: boolean;
  /** Without an answer: what happened instead (timeout, or the socket error's code). */
  why?: string;
}

export function probePath(source: string, target: string, timeoutMs = 1000): Promise<ProbeAnswer> {
  return new Promise((resolve) => {
    const sock = connect({ host: target, port: PROBE_PORT, localAddress: source, timeout: timeoutMs });
    const done = (a: ProbeAnswer) => {
      sock.destroy();
      resolve(a);
    };
    sock.once('connect', () => done({ answered: true }));
    sock.once('timeout', () => done({ answered: false, why: `no answer within ${timeoutMs} ms` }));
    sock.once('error', (e: NodeJS.ErrnoException) =>
      done(e.code === 'ECONNREFUSED' ? { answered: true } : { answered: false, why: e.code ?? e.message }),
    );
  });
}
