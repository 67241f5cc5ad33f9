// Runs the compiled test files with Node's own test runner. Tests need root (they create network
// namespaces); every test removes what it made, on failure too.
//
// A test file whose source carries the line `// weft-test: exclusive <resource>` needs a resource that
// exists once per machine (the Neutron data plane: its hypervisor namespaces have fixed names). Those
// files run after the others, one at a time, so that two of them never meet.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const filter = process.argv[2] ?? '';
const files = [];
const walk = (dir) => {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (p.endsWith('.test.js') && p.includes(filter)) files.push(p);
  }
};
walk('dist/test');
if (files.length === 0) {
  console.error(`no test files match "${filter}"`);
  process.exit(1);
}
const exclusive = (f) => /^\/\/ weft-test: exclusive \S+/m.test(readFileSync(f, 'utf8'));
const shared = files.filter((f) => !exclusive(f));
const alone = files.filter(exclusive);
const concurrency = process.env.WEFT_TEST_CONCURRENCY ?? 2;
const runGroup = (group, n) =>
  group.length === 0
    ? 0
    : (spawnSync(process.execPath, ['--test', '--test-reporter=spec', `--test-concurrency=${n}`, ...group], {
        stdio: 'inherit',
      }).status ?? 1);
const a = runGroup(shared, concurrency);
const b = runGroup(alone, 1);
process.exit(a || b);
