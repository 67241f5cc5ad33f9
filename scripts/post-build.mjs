// After tsc: marks the entry points executable (tsc does not keep file modes) and builds the native
// parts: the weft-cni shim (native/cni-shim.c) next to main.js, and two Node-API addons built against
// the headers that come with Node (the fast-path server's socket side, sd_notify). Without a C
// compiler (or headers) they are skipped with a warning: dist/src/cni/main.js is then the plugin (the
// same answers, ~50 ms slower per call), and the agent serves no fast path.
import { chmodSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { spawnSync } from 'node:child_process';

for (const f of ['dist/src/cli/weft.js', 'dist/src/cni/main.js']) if (existsSync(f)) chmodSync(f, 0o755);

const cc = process.env.CC ?? 'cc';
const r = spawnSync(cc, ['-O2', '-Wall', '-Wextra', '-Werror', '-o', 'dist/src/cni/weft-cni', 'native/cni-shim.c'], {
  stdio: 'inherit',
});
if (r.error || r.status !== 0) {
  console.warn(`post-build: cannot compile native/cni-shim.c with ${cc} (${r.error?.message ?? `exit ${r.status}`}); weft-cni falls back to dist/src/cni/main.js`);
}

const headers = [join(dirname(process.execPath), '..', 'include', 'node'), '/usr/include/node'].find((d) =>
  existsSync(join(d, 'node_api.h')),
);
// Node-API addons: what Node's own modules cannot do (receive descriptors; unix datagrams).
const addons = [
  ['native/cni-fdserver.c', 'dist/src/cni/fdserver.node', 'the agent serves no weft-cni fast path'],
  ['native/sd-notify.c', 'dist/src/agent/sd-notify.node', 'the agent cannot tell systemd it is ready (Type=notify)'],
];
for (const [src, out, without] of addons) {
  const a = headers
    ? spawnSync(cc, ['-shared', '-fPIC', '-O2', '-Wall', '-Wextra', '-Werror', `-I${headers}`, '-o', out, src, '-lpthread'], {
        stdio: 'inherit',
      })
    : undefined;
  if (!a || a.error || a.status !== 0) {
    console.warn(`post-build: cannot build ${src} (${!a ? 'no node_api.h next to Node' : (a.error?.message ?? `exit ${a.status}`)}); ${without}`);
  }
}
// weft trace's BPF programs and loader (self-contained; warns and skips without clang/libbpf).
await import('./build-trace.mjs');
