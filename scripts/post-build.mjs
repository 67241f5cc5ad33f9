// After tsc: marks the entry points executable (tsc does not keep file modes) and builds the native
// parts with the system C compiler:
//  - the weft-cni shim (native/cni-shim.c) next to main.js; without it dist/src/cni/main.js is the
//    plugin (the same answers, ~50 ms slower per call);
//  - Node-API addons, against the headers that come with Node: the netlink addon (native/netlink.c;
//    without it the kernel layer runs iproute2 for every change), the fast-path server's socket side
//    (receives pod namespaces as descriptors), sd_notify;
//  - weft-udp (native/udp/*.c), the udp backend's data path, into dist/native/; without it the udp
//    backend refuses to start and says how to build it;
//  - weft trace's BPF programs and loader (scripts/build-trace.mjs).
// A part that cannot be compiled is skipped with a warning that says what works without it.
import { chmodSync, existsSync, mkdirSync, readdirSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { spawnSync } from 'node:child_process';

for (const f of ['dist/src/cli/weft.js', 'dist/src/cni/main.js']) if (existsSync(f)) chmodSync(f, 0o755);

const cc = process.env.CC ?? 'cc';
const compile = (what, args, fallback) => {
  const r = spawnSync(cc, ['-O2', '-Wall', '-Wextra', '-Werror', ...args], { stdio: 'inherit' });
  const ok = !r.error && r.status === 0;
  if (!ok) console.warn(`post-build: cannot compile ${what} with ${cc} (${r.error?.message ?? `exit ${r.status}`}); ${fallback}`);
  return ok;
};
compile('native/cni-shim.c', ['-o', 'dist/src/cni/weft-cni', 'native/cni-shim.c'], 'weft-cni falls back to dist/src/cni/main.js');

const headers = [join(dirname(dirname(process.execPath)), 'include', 'node'), '/usr/include/node'].find((d) =>
  existsSync(join(d, 'node_api.h')),
);
const addons = [
  ['native/netlink.c', 'dist/src/kernel/weft-netlink.node', 'the kernel layer uses iproute2 instead of netlink'],
  ['native/cni-fdserver.c', 'dist/src/cni/fdserver.node', 'the agent serves no weft-cni fast path'],
  ['native/sd-notify.c', 'dist/src/agent/sd-notify.node', 'the agent cannot tell systemd it is ready (Type=notify)'],
];
for (const [src, out, without] of addons) {
  if (headers === undefined) console.warn(`post-build: no Node-API headers (node_api.h) for ${src}; ${without}`);
  else compile(src, ['-shared', '-fPIC', '-pthread', `-I${headers}`, '-o', out, src], without);
}

// Built beside and renamed over the old one: a weft-udp that is running keeps its (old) file.
mkdirSync('dist/native', { recursive: true });
const udpSources = readdirSync('native/udp')
  .filter((f) => f.endsWith('.c'))
  .map((f) => `native/udp/${f}`);
if (compile('native/udp', ['-O3', '-pthread', '-o', 'dist/native/weft-udp.new', ...udpSources], 'the udp backend is unavailable'))
  renameSync('dist/native/weft-udp.new', 'dist/native/weft-udp');

await import('./build-trace.mjs');
