import { parentPort } from 'node:worker_threads';
import { LATEST_VERSION } from './config.js';
import { ERR } from './errors.js';
import { redirectWarnings } from './log.js';
import { runCni } from './run.js';

/**
 * The CNI server's worker thread: runs one request at a time (the verbs are synchronous and hold the
 * allocation lock while they work), each exactly as the executable would, warnings captured for the
 * runtime that asked.
 */
interface Job {
  id: number;
  vars: Record<string, string>;
  input: string;
}

// Load the verbs now, not on the first request: being loaded already is the point of the server.
let queue: Promise<unknown> = import('./plugin.js');
parentPort?.on('message', (job: Job) => {
  queue = queue.then(async () => {
    const stderr: string[] = [];
    const restore = redirectWarnings((line) => stderr.push(line));
    let r: { code: number; stdout: string };
    try {
      r = await runCni(job.vars, () => job.input);
    } catch (e) {
      // runCni answers every failure itself; this is a last resort so that no request hangs.
      const msg = `internal error: ${e instanceof Error ? e.message : String(e)}`;
      r = { code: 1, stdout: JSON.stringify({ cniVersion: LATEST_VERSION, code: ERR.INTERNAL, msg }) + '\n' };
    } finally {
      restore();
    }
    parentPort?.postMessage({ id: job.id, ...r, stderr: stderr.join('') });
  });
});
