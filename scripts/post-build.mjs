// After tsc: marks the entry points executable (tsc does not keep file modes) and builds the native
// weft-cni shim (native/cni-shim.c) next to main.js. Without a C compiler the shim is skipped with a
// warning: dist/src/cni/main.js is then the plugin (the same answers, ~50 ms slower per call).
// It also builds weft-udp (native/udp/*.c), the udp backend's data path, into dist/native/; without it
// the udp backend refuses to start and says how to build it.
import { chmodSync, existsSync, mkdirSync, readdirSync, renameSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

for (const f of ['dist/src/cli/weft.js', 'dist/src/cni/main.js']) if (existsSync(f)) chmodSync(f, 0o755);

const cc = process.env.CC ?? 'cc';
const r = spawnSync(cc, ['-O2', '-Wall', '-Wextra', '-Werror', '-o', 'dist/src/cni/weft-cni', 'native/cni-shim.c'], {
  stdio: 'inherit',
});
if (r.error || r.status !== 0) {
  console.warn(`post-build: cannot compile native/cni-shim.c with ${cc} (${r.error?.message ?? `exit ${r.status}`}); weft-cni falls back to dist/src/cni/main.js`);
}

// Built beside and renamed over the old one: a weft-udp that is running keeps its (old) file.
mkdirSync('dist/native', { recursive: true });
const udpSources = readdirSync('native/udp')
  .filter((f) => f.endsWith('.c'))
  .map((f) => `native/udp/${f}`);
const u = spawnSync(
  cc,
  ['-O3', '-Wall', '-Wextra', '-Werror', '-pthread', '-o', 'dist/native/weft-udp.new', ...udpSources],
  { stdio: 'inherit' },
);
if (u.error || u.status !== 0) {
  console.warn(`post-build: cannot compile native/udp with ${cc} (${u.error?.message ?? `exit ${u.status}`}); the udp backend is unavailable`);
} else renameSync('dist/native/weft-udp.new', 'dist/native/weft-udp');
