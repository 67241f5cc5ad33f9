import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The layering the design promises, checked on the sources: only src/kernel/ starts processes that
 * touch the kernel (ip, bridge, nft, tc, sysctl, ethtool), and nothing under src/ but the CLI imports
 * from src/cli/. A few modules start weft's own native programs (not kernel tools); they are listed.
 */
const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}
const files = [...sources(join(ROOT, 'src')), ...sources(join(ROOT, 'bench'))].map((p) => ({
  path: relative(ROOT, p),
  text: readFileSync(p, 'utf8'),
}));

/** Modules that start processes of weft's own, never a kernel tool. */
const OWN_PROGRAMS: Record<string, string> = {
  'src/util/exec.ts': 'the generic runner the kernel layer is built on',
  'src/udp/supervisor.ts': 'weft-udp, the udp data path',
  'src/trace/native.ts': "weft trace's BPF loader",
  'src/lab/agents.ts': "the lab's agent supervisor shell (its command comes from the kernel layer)",
};

test('only src/kernel/ imports child_process (besides the starters of weft’s own programs)', () => {
  const imports = /import \{([^}]*)\} from 'node:child_process'/;
  const starters = /\b(spawn|spawnSync|execFile|execFileSync|exec|execSync|fork)\b/;
  const offenders = files
    .filter((f) => starters.test(imports.exec(f.text)?.[1] ?? ''))
    .map((f) => f.path)
    .filter((p) => !p.startsWith('src/kernel/') && !(p in OWN_PROGRAMS));
  assert.deepEqual(offenders, []);
});

test('no kernel tool is run by name outside src/kernel/', () => {
  const tool = /\brun(?:Sync)?\(\s*'(ip|bridge|nft|tc|sysctl|ethtool|nsenter)'/;
  const offenders = files
    .filter((f) => !f.path.startsWith('src/kernel/') && tool.test(f.text))
    .map((f) => f.path);
  assert.deepEqual(offenders, []);
});

test('nothing under src/ but src/cli/ imports from src/cli/', () => {
  const offenders = files
    .filter((f) => f.path.startsWith('src/') && !f.path.startsWith('src/cli/'))
    .filter((f) => /from '(\.\.\/)+cli\//.test(f.text))
    .map((f) => f.path);
  assert.deepEqual(offenders, []);
});
