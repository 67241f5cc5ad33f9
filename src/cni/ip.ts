import { threadId } from 'node:worker_threads';

/**
 * WEFT_CNI_TRACE=1: prints each phase's time since process start to stderr (for the benchmark); in a
 * worker thread of the CNI server, tagged with the thread (`weft-cni trace[t3] …`). The kernel access
 * this module once held is the kernel layer's now (src/kernel).
 */
const tracing = process.env.WEFT_CNI_TRACE === '1';
const tag = threadId ? `[t${threadId}]` : '';

export function trace(label: string): void {
  if (tracing) process.stderr.write(`weft-cni trace${tag} ${label} ${performance.now().toFixed(2)}\n`);
}
