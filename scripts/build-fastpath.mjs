// Builds weft's BPF fast path (issue 15) into dist/native/fastpath/: the BPF object from bpf/fastpath.c
// (Debian's clang and libbpf headers, with a vmlinux.h generated from this kernel's BTF by bpftool)
// and its loader native/fastpath/weft-fastpath.c (linked against libbpf). Run by scripts/post-build.mjs,
// or on its own (node scripts/build-fastpath.mjs). A machine without the tools gets a warning and no
// fast path (`--fast-path auto` then says why and uses the normal one).
import { existsSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

const out = 'dist/native/fastpath';
const btf = '/sys/kernel/btf/vmlinux';
const built = [`${out}/fastpath.bpf.o`, `${out}/weft-fastpath`];
const sources = ['bpf/fastpath.c', 'bpf/fastpath.h', 'native/fastpath/weft-fastpath.c', 'scripts/build-fastpath.mjs'];
const mtime = (f) => (existsSync(f) ? statSync(f).mtimeMs : 0);
const upToDate = Math.min(...built.map(mtime)) > Math.max(...sources.map(mtime));

const step = (what, cmd, args, capture = false) => {
  const r = spawnSync(cmd, args, { stdio: ['ignore', capture ? 'pipe' : 'inherit', 'inherit'], maxBuffer: 1 << 30 });
  if (r.error || r.status !== 0) throw new Error(`${what}: ${r.error?.message ?? `${cmd} exited ${r.status}`}`);
  return r.stdout;
};
try {
  if (upToDate) throw null; // nothing changed since the last build
  // A failed step must leave no stale object or loader behind: no fast path rather than a mismatched one.
  for (const f of built) rmSync(f, { force: true });
  mkdirSync(out, { recursive: true });
  if (!existsSync(btf)) throw new Error(`${btf} is missing (a kernel without BTF)`);
  // vmlinux.h: the kernel's own types (struct nf_conn, struct bpf_ct_opts, ...), as this kernel has them.
  writeFileSync(`${out}/vmlinux.h`, step('vmlinux.h', 'bpftool', ['btf', 'dump', 'file', btf, 'format', 'c'], true));
  const arch = process.arch === 'arm64' ? 'arm64' : 'x86';
  step('fastpath.bpf.o', process.env.CLANG ?? 'clang', ['-O2', '-g', '-Wall', '-Werror', '-target', 'bpf', `-D__TARGET_ARCH_${arch}`, `-I${out}`, '-Ibpf', '-c', 'bpf/fastpath.c', '-o', built[0]]);
  step('llvm-strip', 'llvm-strip', ['-g', built[0]]); // DWARF is not needed at run time; BTF (kept by strip -g) is
  step('weft-fastpath', process.env.CC ?? 'cc', ['-O2', '-Wall', '-Wextra', '-Werror', '-o', built[1], 'native/fastpath/weft-fastpath.c', '-lbpf']);
} catch (e) {
  if (e !== null) {
    for (const f of built) rmSync(f, { force: true });
    console.warn(`build-fastpath: ${e.message}; the BPF fast path is not built (scripts/install.sh installs clang, llvm, libbpf-dev and bpftool)`);
  }
}
