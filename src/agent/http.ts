import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { rm } from 'node:fs/promises';
import type { Registry } from 'prom-client';

/**
 * The agent's operational endpoints: /healthz (the process is alive and its loop turns), /readyz (the
 * node can serve pods), /metrics (Prometheus), /status (JSON for `weft status`). Served on a TCP address
 * and/or a unix socket (the socket lets tools in other network namespaces reach the agent).
 */
export interface StatusSource {
  healthy(): boolean;
  ready(): { ready: boolean; reasons: string[] };
  status(): unknown;
  promRegistry: Registry;
  /** POST /leave: the node leaves the cluster (cloud objects, lease and data path removed). */
  leave?(): Promise<void>;
}

export async function serve(src: StatusSource, listen: { tcp?: string; socket?: string }): Promise<Server[]> {
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const send = (code: number, body: string, type = 'text/plain') => {
        res.writeHead(code, { 'content-type': type });
        res.end(body);
      };
      switch ((req.url ?? '/').split('?')[0]) {
        case '/healthz':
          return src.healthy() ? send(200, 'ok\n') : send(500, 'event loop stalled\n');
        case '/readyz': {
          const r = src.ready();
          return r.ready ? send(200, 'ready\n') : send(503, `not ready: ${r.reasons.join('; ')}\n`);
        }
        case '/metrics':
          return send(200, await src.promRegistry.metrics(), src.promRegistry.contentType);
        case '/leave':
          if (req.method !== 'POST' || !src.leave) return send(405, 'POST /leave\n');
          await src.leave();
          return send(200, 'left the cluster\n');
        case '/status':
          return send(200, JSON.stringify(src.status(), null, 2), 'application/json');
        default:
          return send(404, 'not found\n');
      }
    })().catch((e: unknown) => {
      res.writeHead(500);
      res.end(String(e));
    });
  };
  const servers: Server[] = [];
  if (listen.socket) {
    await rm(listen.socket, { force: true });
    servers.push(await listenOn(createServer(handler), listen.socket));
  }
  if (listen.tcp) {
    const m = /^(.*):(\d+)$/.exec(listen.tcp);
    if (!m) throw new Error(`--healthz-addr: expected HOST:PORT, got ${listen.tcp}`);
    servers.push(await listenOn(createServer(handler), Number(m[2]), m[1] || '0.0.0.0'));
  }
  return servers;
}

function listenOn(s: Server, portOrPath: number | string, host?: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    if (typeof portOrPath === 'string') s.listen(portOrPath, () => resolve(s));
    else s.listen(portOrPath, host, () => resolve(s));
  });
}
