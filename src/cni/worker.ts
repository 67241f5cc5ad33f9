import { parentPort } from 'node:worker_threads';
import { redirectWarnings } from './log.js';
import { asCniError, errorOutcome, runCni } from './run.js';

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
      r = errorOutcome(asCniError(e)); // runCni answers every failure itself: a last resort, no request hangs
    } finally {
      restore();
    }
    parentPort?.postMessage({ id: job.id, ...r, stderr: stderr.join('') });
  });
});
