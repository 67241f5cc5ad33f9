/**
 * Warnings for the runtime's log: stderr is the spec's channel for unstructured output. The resident
 * server points the sink at the request being served, so a warning reaches the runtime that asked.
 */
let sink: (line: string) => void = (line) => process.stderr.write(line);

export function warn(msg: string): void {
  sink(`weft-cni: ${msg}\n`);
}

/** Sends warnings to `to` until the returned function restores the previous sink. */
export function redirectWarnings(to: (line: string) => void): () => void {
  const before = sink;
  sink = to;
  return () => (sink = before);
}
