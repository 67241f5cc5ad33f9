// Builds weft trace's native half: bpf/trace.bpf.c (CO-RE, against a vmlinux.h generated from this
// kernel's BTF) and native/trace/loader.c, which embeds the BPF object as a libbpf skeleton, into
// dist/native/trace/weft-trace-node. Needs clang, bpftool, libbpf-dev, libelf-dev, zlib1g-dev and
// libnftables-dev (scripts/install.sh installs them). Without them `weft trace` says what is missing;
// nothing else in weft depends on this.
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

const out = 'dist/native/trace';
const sources = ['bpf/trace.bpf.c', 'bpf/trace.h', 'native/trace/loader.c', 'scripts/build-trace.mjs'];
const mtime = (f) => (existsSync(f) ? statSync(f).mtimeMs : 0);
const upToDate = mtime(`${out}/weft-trace-node`) > Math.max(...sources.map(mtime));
mkdirSync(out, { recursive: true });
const step = (what, cmd, args, opts = {}) => {
  const r = spawnSync(cmd, args, { encoding: opts.capture ? 'buffer' : 'utf8', stdio: opts.capture ? ['ignore', 'pipe', 'inherit'] : 'inherit', maxBuffer: 1 << 30 });
  if (r.error || r.status !== 0) throw new Error(`${what}: ${r.error?.message ?? `${cmd} exited ${r.status}`}`);
  return r.stdout;
};
try {
  if (upToDate) throw null; // nothing changed since the last build
  for (const h of ['/usr/include/bpf/libbpf.h', '/usr/include/nftables/libnftables.h', '/sys/kernel/btf/vmlinux'])
    if (!existsSync(h)) throw new Error(`${h} is missing`);
  writeFileSync(`${out}/vmlinux.h`, step('vmlinux.h', 'bpftool', ['btf', 'dump', 'file', '/sys/kernel/btf/vmlinux', 'format', 'c'], { capture: true }));
  step('trace.bpf.o', process.env.CLANG ?? 'clang', ['-g', '-O2', '-target', 'bpf', '-D__TARGET_ARCH_x86', `-I${out}`, '-Ibpf', '-c', 'bpf/trace.bpf.c', '-o', `${out}/trace.bpf.o`]);
  writeFileSync(`${out}/trace.skel.h`, step('skeleton', 'bpftool', ['gen', 'skeleton', `${out}/trace.bpf.o`, 'name', 'trace_bpf'], { capture: true }));
  step('weft-trace-node', process.env.CC ?? 'cc', ['-O2', '-g', '-Wall', '-Wextra', '-Werror', `-I${out}`, '-Ibpf', '-o', `${out}/weft-trace-node`, 'native/trace/loader.c', '-lbpf', '-lelf', '-lz', '-lnftables', '-lpthread']);
} catch (e) {
  if (e !== null) console.warn(`build-trace: ${e.message}; weft trace is unavailable until scripts/install.sh has installed its build tools`);
}
