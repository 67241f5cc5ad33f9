import { request } from 'node:http';
import { WeftError } from '../util/errors.js';

/**
 * The agent's HTTP client, for the tools that talk to a node's agent over its unix socket (weft
 * status and leave, the lab, bench): one request, its status code and body.
 */
export interface AgentReply {
  code: number;
  body: string;
}

/** Fetches a path from an agent's status socket. */
export function agentGet(socket: string, path: string): Promise<AgentReply> {
  return agentRequest(socket, path, 'GET');
}

export function agentRequest(socket: string, path: string, method: 'GET' | 'POST'): Promise<AgentReply> {
  return new Promise((resolve, reject) => {
    const req = request(
      { socketPath: socket, path, method, timeout: method === 'POST' ? 60_000 : 3000 },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ code: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', (e: NodeJS.ErrnoException) =>
      reject(
        new WeftError(`cannot reach the agent at ${socket}: ${e.code ?? e.message}`, {
          hint: 'is `weft agent` running on this node? pass --socket',
        }),
      ),
    );
    req.end();
  });
}
