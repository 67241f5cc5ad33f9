// After tsc: marks the entry points executable (tsc does not keep file modes) and builds the native
// parts with the system C compiler:
//  - the weft-cni shim (native/cni-shim.c) next to main.js; without it dist/src/cni/main.js is the
//    plugin (the same answers, ~50 ms slower per call);
//  - the netlink addon (native/netlink.c, Node-API, headers from /usr/include/node) next to
//    src/kernel/netlink.js; without it the kernel layer runs iproute2 for every change (slower).
// A part that cannot be compiled is skipped with a warning.
import { chmodSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';

for (const f of ['dist/src/cli/weft.js', 'dist/src/cni/main.js']) if (existsSync(f)) chmodSync(f, 0o755);

const cc = process.env.CC ?? 'cc';
const compile = (what, args, fallback) => {
  const r = spawnSync(cc, ['-O2', '-Wall', '-Wextra', '-Werror', ...args], { stdio: 'inherit' });
  if (r.error || r.status !== 0)
    console.warn(`post-build: cannot compile ${what} with ${cc} (${r.error?.message ?? `exit ${r.status}`}); ${fallback}`);
};
compile('native/cni-shim.c', ['-o', 'dist/src/cni/weft-cni', 'native/cni-shim.c'], 'weft-cni falls back to dist/src/cni/main.js');

const headers = [join(dirname(dirname(process.execPath)), 'include', 'node'), '/usr/include/node'].find((d) =>
  existsSync(join(d, 'node_api.h')),
);
if (headers === undefined)
  console.warn('post-build: no Node-API headers (node_api.h); the kernel layer uses iproute2 instead of netlink');
else
  compile(
    'native/netlink.c',
    ['-shared', '-fPIC', '-pthread', `-I${headers}`, '-o', 'dist/src/kernel/weft-netlink.node', 'native/netlink.c'],
    'the kernel layer uses iproute2 instead of netlink',
  );
