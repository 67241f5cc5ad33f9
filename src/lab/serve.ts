import { spawnIn } from '../kernel/exec.js';
import { createSocket } from 'node:dgram';
import { open } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, WeftError } from '../util/errors.js';
import { Journal, labDir } from './journal.js';
import type { LabState } from './state.js';
import { cmdline } from './netns.js';

/**
 * `weft lab serve`: a small responder in a pod, so that services have something to answer. On TCP it
 * answers an HTTP request with the pod's name and echoes anything else; on UDP it echoes datagrams.
 * A datagram that starts with weft trace's request magic ("WFTQ") is echoed with the reply magic
 * ("WFTA"), so the tracer can tell the answer from the question even behind NAT. The responder is a
 * process of the lab (in its journal), so `weft lab down` stops it.
 */
const WEFT_JS = fileURLToPath(new URL('../cli/weft.js', import.meta.url));
export const REQUEST_MAGIC = Buffer.from('WFTQ');
export const REPLY_MAGIC = Buffer.from('WFTA');
export type ServeProto = 'tcp' | 'udp' | 'both';

export interface ServeOptions {
  port: number;
  proto: ServeProto;
}

/** Starts the responder in the pod's namespace, detached; returns its pid once it listens. */
export async function labServe(state: LabState, podName: string, o: ServeOptions): Promise<number> {
  const pod = state.pods.find((p) => p.name === podName);
  if (!pod)
    throw new WeftError(`lab ${state.name} has no pod "${podName}"`, {
      hint: `pods: ${state.pods.map((p) => p.name).join(' ')}`,
    });
  if (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535)
    throw new ConfigError('--port', `must be an integer between 1 and 65535, got ${String(o.port)}`);
  const dir = labDir(state.name);
  const logPath = join(dir, `serve-${pod.name}-${o.port}.log`);
  const log = await open(logPath, 'a');
  const child = spawnIn(
    pod.netns,
    [
      process.execPath,
      WEFT_JS,
      'lab',
      'serve',
      '--name',
      state.name,
      pod.name,
      '--port',
      String(o.port),
      '--proto',
      o.proto,
      '--foreground',
    ],
    { detached: true, stdio: ['ignore', log.fd, log.fd] },
  );
  await log.close();
  child.unref();
  if (child.pid === undefined) throw new WeftError(`cannot start a responder in ${pod.name}`);
  await new Journal(dir).record({
    kind: 'process',
    pid: child.pid,
    what: `serve ${pod.name}:${o.port}/${o.proto}`,
  });
  // Wait until it listens (it prints "listening"), or report why it could not.
  const { readFile } = await import('node:fs/promises');
  const deadline = Date.now() + 10_000;
  for (;;) {
    const text = await readFile(logPath, 'utf8').catch(() => '');
    const mine = text.split('\n').filter((l) => l.includes(`pid ${child.pid} `));
    if (mine.some((l) => l.includes('listening'))) return child.pid;
    if ((await cmdline(child.pid)) === undefined || Date.now() > deadline) {
      const why = text.trim().split('\n').slice(-1)[0] ?? 'no output';
      throw new WeftError(`the responder in ${pod.name} did not start: ${why}`, { hint: `see ${logPath}` });
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The responder itself (runs inside the pod's namespace until killed). */
export async function runResponder(podName: string, o: ServeOptions): Promise<void> {
  const say = (m: string) => process.stdout.write(`pid ${process.pid} ${m}\n`);
  const jobs: Promise<void>[] = [];
  if (o.proto !== 'udp') {
    const server = createServer((sock) => {
      sock.on('error', () => undefined);
      sock.once('data', (first) => {
        if (/^(GET|HEAD|POST|PUT) /.test(first.toString('latin1', 0, 8))) {
          const body = `${podName}\n`;
          sock.end(
            `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
          );
        } else {
          sock.write(first);
          sock.pipe(sock);
        }
      });
    });
    jobs.push(
      new Promise((resolve, reject) =>
        server.once('error', reject).listen(o.port, '0.0.0.0', () => resolve()),
      ),
    );
  }
  if (o.proto !== 'tcp') {
    const udp = createSocket('udp4');
    udp.on('message', (msg, from) => {
      const answer = Buffer.from(msg);
      if (answer.subarray(0, 4).equals(REQUEST_MAGIC)) REPLY_MAGIC.copy(answer, 0);
      udp.send(answer, from.port, from.address);
    });
    jobs.push(
      new Promise((resolve, reject) => udp.once('error', reject).bind(o.port, '0.0.0.0', () => resolve())),
    );
  }
  try {
    await Promise.all(jobs);
  } catch (e) {
    say(`cannot listen on port ${o.port}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    process.exit(1);
  }
  say(`listening on ${o.proto === 'both' ? 'tcp+udp' : o.proto} port ${o.port} in ${podName}`);
}
