// Builds weft's BPF fast path (issue 15) into dist/fastpath/: the BPF object from bpf/fastpath.c
// (Debian's clang and libbpf headers, with a vmlinux.h generated from this kernel's BTF by bpftool)
// and its loader native/fastpath/weft-fastpath.c (linked against libbpf). Self-contained: run by
// scripts/post-build.mjs, or on its own (node scripts/build-fastpath.mjs). A machine without the
// tools gets a warning and no fast path (`--fast-path auto` then says why and uses the normal one).
import { existsSync, mkdirSync, openSync, closeSync, renameSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

const OUT = 'dist/fastpath';
const BTF = '/sys/kernel/btf/vmlinux';
// A failed step must leave no stale object or loader behind: no fast path rather than a mismatched one.
for (const f of ['fastpath.bpf.o', 'weft-fastpath']) rmSync(`${OUT}/${f}`, { force: true });
mkdirSync(OUT, { recursive: true });

function step(what, file, args, opts = {}) {
  const r = spawnSync(file, args, { stdio: ['ignore', opts.stdout ?? 'inherit', 'inherit'] });
  if (r.error || r.status !== 0) {
    console.warn(
      `build-fastpath: ${what} failed (${r.error?.message ?? `${file} exit ${r.status}`}); ` +
        'the BPF fast path is not built (scripts/install.sh installs clang, llvm, libbpf-dev and bpftool)',
    );
    return false;
  }
  return true;
}

function build() {
  if (!existsSync(BTF)) {
    console.warn(`build-fastpath: ${BTF} is missing (a kernel without BTF): the BPF fast path is not built`);
    return;
  }
  // vmlinux.h: the kernel's own types (struct nf_conn, struct bpf_ct_opts, ...), as this kernel has them.
  const header = `${OUT}/vmlinux.h`;
  const fd = openSync(`${header}.tmp`, 'w');
  const dumped = step('bpftool btf dump', 'bpftool', ['btf', 'dump', 'file', BTF, 'format', 'c'], { stdout: fd });
  closeSync(fd);
  if (!dumped) return;
  renameSync(`${header}.tmp`, header);
  const obj = `${OUT}/fastpath.bpf.o`;
  const arch = process.arch === 'arm64' ? 'arm64' : 'x86';
  if (
    !step('clang (bpf/fastpath.c)', 'clang', [
      '-O2', '-g', '-Wall', '-Werror', '-target', 'bpf', `-D__TARGET_ARCH_${arch}`,
      '-I', OUT, '-I', 'bpf', '-c', 'bpf/fastpath.c', '-o', obj,
    ])
  )
    return;
  // DWARF is not needed at run time; BTF (kept by strip -g) is.
  step('llvm-strip', 'llvm-strip', ['-g', obj]);
  step('cc (native/fastpath/weft-fastpath.c)', process.env.CC ?? 'cc', [
    '-O2', '-Wall', '-Wextra', '-Werror', '-o', `${OUT}/weft-fastpath`, 'native/fastpath/weft-fastpath.c', '-lbpf',
  ]);
}

build();
