import { connect, type Socket } from 'node:net';
import { WeftError } from '../util/errors.js';

/**
 * The agent's end of weft-udp's control socket (native/udp/main.c): an abstract unix socket, so one
 * per network namespace, named after the TUN device. One command per line, one reply line each,
 * answered in order; requests may be pipelined. A reply that comes after its request timed out is
 * read and discarded, so later replies still match their requests.
 */

export const controlSocketName = (tun: string): string => `weft-udp/${tun}`;

interface Waiter {
  resolve: (line: string) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  abandoned: boolean;
}

export class ControlConnection {
  private buf = '';
  private readonly waiting: Waiter[] = [];
  private closedWith: Error | undefined;
  private readonly closeHandlers: (() => void)[] = [];

  private constructor(private readonly sock: Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => this.onData(d));
    sock.on('error', () => undefined); // 'close' follows and says it all
    sock.on('close', () => this.onClose());
  }

  /** Connects to the data path of this network namespace; rejects when none listens. */
  static open(name: string, timeoutMs = 1000): Promise<ControlConnection> {
    return new Promise((resolve, reject) => {
      const sock = connect({ path: `\0${name}` });
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new WeftError(`no answer from the control socket @${name} within ${timeoutMs} ms`));
      }, timeoutMs);
      sock.once('connect', () => {
        clearTimeout(timer);
        sock.removeAllListeners('error');
        resolve(new ControlConnection(sock));
      });
      sock.once('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(new WeftError(`cannot connect to @${name}: ${e.code ?? e.message}`));
      });
    });
  }

  get closed(): boolean {
    return this.closedWith !== undefined;
  }

  /** Called once when the connection ends (the data path exited, or close() was called). */
  onClosed(fn: () => void): void {
    if (this.closed) fn();
    else this.closeHandlers.push(fn);
  }

  request(line: string, timeoutMs = 2000): Promise<string> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        resolve,
        reject,
        abandoned: false,
        timer: setTimeout(() => {
          w.abandoned = true;
          reject(new WeftError(`weft-udp did not answer "${line.slice(0, 20)}" within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.waiting.push(w);
      this.sock.write(line + '\n');
    });
  }

  close(): void {
    this.sock.destroy();
  }

  private onData(d: string): void {
    this.buf += d;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      const w = this.waiting.shift();
      if (!w) continue;
      clearTimeout(w.timer);
      if (!w.abandoned) w.resolve(line);
    }
  }

  private onClose(): void {
    this.closedWith = new WeftError('the control connection to weft-udp closed');
    for (const w of this.waiting.splice(0)) {
      clearTimeout(w.timer);
      if (!w.abandoned) w.reject(this.closedWith);
    }
    for (const fn of this.closeHandlers.splice(0)) fn();
  }
}
