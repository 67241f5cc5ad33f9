import { mkdtemp } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEtcd, stopEtcd } from '../../src/lab/etcd-server.js';

/** A free TCP port on 127.0.0.1 (asked from the kernel). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

export interface TestEtcd {
  endpoint: string;
  pid: number;
  stop(): Promise<void>;
}

/** A real etcd on 127.0.0.1 with its own data directory; stop() kills it and removes the directory. */
export async function startTestEtcd(): Promise<TestEtcd> {
  const dir = await mkdtemp(join(tmpdir(), 'weft-etcd-'));
  const s = await startEtcd({
    dir,
    host: '127.0.0.1',
    clientPort: await freePort(),
    peerPort: await freePort(),
  });
  return { endpoint: s.endpoint, pid: s.pid, stop: () => stopEtcd(s.pid, dir) };
}
