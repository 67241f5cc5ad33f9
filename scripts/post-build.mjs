// After tsc: marks the entry points executable (tsc does not keep file modes) and builds the native
// weft-cni shim (native/cni-shim.c) next to main.js. Without a C compiler the shim is skipped with a
// warning: dist/src/cni/main.js is then the plugin (the same answers, ~50 ms slower per call).
import { chmodSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

for (const f of ['dist/src/cli/weft.js', 'dist/src/cni/main.js']) if (existsSync(f)) chmodSync(f, 0o755);

const cc = process.env.CC ?? 'cc';
const r = spawnSync(cc, ['-O2', '-Wall', '-Wextra', '-Werror', '-o', 'dist/src/cni/weft-cni', 'native/cni-shim.c'], {
  stdio: 'inherit',
});
if (r.error || r.status !== 0) {
  console.warn(`post-build: cannot compile native/cni-shim.c with ${cc} (${r.error?.message ?? `exit ${r.status}`}); weft-cni falls back to dist/src/cni/main.js`);
}

// weft trace's BPF programs and loader (self-contained; warns and skips without clang/libbpf).
await import('./build-trace.mjs');
