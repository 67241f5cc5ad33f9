import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { chmod, mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Registry } from 'prom-client';
import { WeftError } from '../util/errors.js';

/**
 * The agent's operational endpoints, on two listeners that serve different things:
 *
 *   TCP (--healthz-addr)     GET /healthz, /readyz, /metrics — probes anyone on the network may ask;
 *                            GET /status too only with --status-on-tcp (it shows the cluster's
 *                            topology). Never an action: anything else is 404 or 405.
 *   unix socket (root only)  all of the above, /status, and the actions (POST /leave) — the socket
 *                            file is 0600 and owned by root, so only root on the node can act.
 */
export interface AgentEndpoints {
  /** The process is alive and its loop turns. */
  healthy(): boolean;
  /** The node can serve pods. */
  ready(): { ready: boolean; reasons: string[] };
  /** JSON for `weft status`. */
  status(): unknown;
  promRegistry: Registry;
  /** POST /leave: the node leaves the cluster (cloud objects, lease and data path removed); absent: 404. */
  leave?(): Promise<void>;
}

export interface ListenOptions {
  tcp?: string;
  socket?: string;
  statusOnTcp?: boolean;
}

interface Reply {
  code: number;
  body: string;
  type?: string;
}

export interface Endpoint {
  method: 'GET' | 'POST';
  handle(src: AgentEndpoints): Promise<Reply> | Reply;
}

const text = (code: number, body: string): Reply => ({ code, body });

/** Read-only probes: served everywhere. */
const PROBES: Record<string, Endpoint> = {
  '/healthz': {
    method: 'GET',
    handle: (src) => (src.healthy() ? text(200, 'ok\n') : text(500, 'event loop stalled\n')),
  },
  '/readyz': {
    method: 'GET',
    handle: (src) => {
      const r = src.ready();
      return r.ready ? text(200, 'ready\n') : text(503, `not ready: ${r.reasons.join('; ')}\n`);
    },
  },
  '/metrics': {
    method: 'GET',
    handle: async (src) => ({
      code: 200,
      body: await src.promRegistry.metrics(),
      type: src.promRegistry.contentType,
    }),
  },
};

/** The node's view of the cluster: on the socket, and on TCP only when asked for. */
const STATUS: Record<string, Endpoint> = {
  '/status': {
    method: 'GET',
    handle: (src) => ({ code: 200, body: JSON.stringify(src.status(), null, 2), type: 'application/json' }),
  },
};

/** What changes state: on the root-only socket alone. */
const ACTIONS: Record<string, Endpoint> = {
  '/leave': {
    method: 'POST',
    handle: async (src) => {
      if (!src.leave) return text(404, 'not found\n');
      await src.leave();
      return text(200, 'left the cluster\n');
    },
  },
};

/** The endpoints of each listener. */
export function endpointsFor(listener: 'tcp' | 'socket', statusOnTcp = false): Record<string, Endpoint> {
  if (listener === 'socket') return { ...PROBES, ...STATUS, ...ACTIONS };
  return statusOnTcp ? { ...PROBES, ...STATUS } : { ...PROBES };
}

/** No endpoint reads a body; a request carrying more than this is cut off. */
const MAX_BODY = 64 * 1024;

function handlerFor(src: AgentEndpoints, endpoints: Record<string, Endpoint>) {
  return (req: IncomingMessage, res: ServerResponse) => {
    const send = (r: Reply, headers: Record<string, string> = {}) => {
      res.writeHead(r.code, { 'content-type': r.type ?? 'text/plain', ...headers });
      res.end(r.body);
    };
    const answer = async (): Promise<void> => {
      const e = endpoints[(req.url ?? '/').split('?')[0] ?? '/'];
      if (!e) return send(text(404, 'not found\n'));
      const method = req.method === 'HEAD' ? 'GET' : req.method;
      if (method !== e.method) return send(text(405, `${e.method} only\n`), { allow: e.method });
      send(await e.handle(src));
    };
    // Answer once the whole request is in (a reply before its body would break the connection).
    let size = 0;
    req.on('data', (b: Buffer) => {
      if ((size += b.length) > MAX_BODY) req.destroy();
    });
    req.on('end', () => void answer().catch((err: unknown) => send(text(500, String(err)))));
  };
}

export interface Listeners {
  close(): void;
}

export async function serve(src: AgentEndpoints, listen: ListenOptions): Promise<Listeners> {
  const servers: Server[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  if (listen.socket) {
    const path = listen.socket;
    servers.push(await listenPrivately(createServer(handlerFor(src, endpointsFor('socket'))), path));
    cleanups.push(() => rm(path, { force: true }));
  }
  if (listen.tcp) {
    const m = /^(.*):(\d+)$/.exec(listen.tcp);
    if (!m) throw new WeftError(`--healthz-addr: expected HOST:PORT, got ${listen.tcp}`);
    const s = createServer(handlerFor(src, endpointsFor('tcp', listen.statusOnTcp)));
    servers.push(await listenOn(s, Number(m[2]), m[1] || '0.0.0.0'));
  }
  return {
    close: () => {
      for (const s of servers) s.close();
      for (const c of cleanups) void c().catch(() => undefined);
    },
  };
}

/**
 * Binds the socket where nobody but root can reach it, then moves it into place: bound inside a fresh
 * 0700 directory, made 0600, renamed to `path`. There is no moment at which the socket is reachable
 * with looser permissions. A directory that does not exist yet is created root-only.
 */
async function listenPrivately(s: Server, path: string): Promise<Server> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await rm(path, { force: true });
  const tmp = await mkdtemp(join(dir, '.s')); // mode 0700
  try {
    const bound = join(tmp, 's');
    await listenOn(s, bound);
    await chmod(bound, 0o600);
    await rename(bound, path);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return s;
}

function listenOn(s: Server, portOrPath: number | string, host?: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    if (typeof portOrPath === 'string') s.listen(portOrPath, () => resolve(s));
    else s.listen(portOrPath, host, () => resolve(s));
  });
}
