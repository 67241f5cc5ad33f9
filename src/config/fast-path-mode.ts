/**
 * The BPF fast path's switch (issue 15): `bpf` (on; the kernel must support it), `auto` (on where the
 * kernel supports it, otherwise the normal path with a one-line reason), `none` (off: removes
 * whatever an earlier run attached). Off by default until it has proved itself. The agent flag
 * `--fast-path` wins over the network config's `FastPath`.
 */
export const FAST_PATH_MODES = ['none', 'bpf', 'auto'] as const;
export type FastPathMode = (typeof FAST_PATH_MODES)[number];
export const DEFAULT_FAST_PATH: FastPathMode = 'none';

export function isFastPathMode(v: unknown): v is FastPathMode {
  return typeof v === 'string' && (FAST_PATH_MODES as readonly string[]).includes(v);
}

/** The mode in effect: the flag if given, else the network config's, else off. */
export function effectiveMode(
  flag: FastPathMode | undefined,
  config: FastPathMode | undefined,
): FastPathMode {
  return flag ?? config ?? DEFAULT_FAST_PATH;
}
