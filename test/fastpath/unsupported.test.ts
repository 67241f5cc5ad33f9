import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FASTPATH_LOADER, FASTPATH_OBJECT } from '../../src/kernel/bpf.js';
import { run } from '../../src/util/exec.js';

const FIXTURE = fileURLToPath(new URL('../../../test/fastpath/fixtures/refused.bpf.c', import.meta.url));

// A kernel that cannot run the fast path, simulated by a program this kernel's verifier must refuse:
// the loader answers exit 3 with one line saying why (the agent logs it and keeps the normal path).
test('a program the kernel refuses: exit 3 and a one-line reason naming the verifier', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'weft-fp-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const obj = join(dir, 'refused.bpf.o');
  const include = join(FASTPATH_OBJECT, '..'); // the build's vmlinux.h
  const cc = await run('clang', ['-O2', '-g', '-target', 'bpf', '-I', include, '-c', FIXTURE, '-o', obj]);
  assert.equal(cc.code, 0);
  const r = await run(FASTPATH_LOADER, ['probe', obj], { allowFailure: true });
  assert.equal(r.code, 3, r.stdout);
  const line = (JSON.parse(r.stdout) as { unsupported: string }).unsupported;
  assert.match(
    line,
    /^the kernel refused weft's BPF programs: .*packet/,
    'the verifier says what it refused',
  );
  assert.doesNotMatch(line, /\n/);
});

test('a file that is no BPF object: exit 1 and a one-line error naming it', async () => {
  const r = await run(FASTPATH_LOADER, ['probe', '/etc/hostname'], { allowFailure: true });
  assert.equal(r.code, 1);
  assert.match((JSON.parse(r.stdout) as { error: string }).error, /cannot open \/etc\/hostname/);
});
