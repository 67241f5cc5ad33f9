// Runs the compiled test files with Node's own test runner. Tests need root (they create network
// namespaces); every test removes what it made, on failure too.
//
// A test file whose source carries the line `// weft-test: exclusive <resource>` needs a resource that
// exists once per machine (the Neutron data plane: its hypervisor namespaces have fixed names). Those
// files run after the others, one at a time, so that two of them never meet.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
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

// Labs the tests make carry this runner's pid (WEFT_LAB_OWNER, src/lab/lab.ts). A run that was killed
// (SIGKILL, a stopped machine) leaves its labs behind, and a Neutron lab among them holds the one
// fixture every later run needs: they are taken down before the tests start. Labs without an owner
// (an operator's) and labs of a runner still alive are left alone.
const LAB_ROOT = process.env.WEFT_LAB_ROOT ?? '/run/weft/labs';
const WEFT = 'dist/src/cli/weft.js';
const alive = (pid) => {
  try {
    return /run-tests/.test(readFileSync(`/proc/${pid}/cmdline`, 'utf8'));
  } catch {
    return false; // no such process
  }
};
const ownedLabs = () =>
  (existsSync(LAB_ROOT) ? readdirSync(LAB_ROOT) : []).flatMap((name) => {
    const f = join(LAB_ROOT, name, 'owner-pid');
    return existsSync(f) ? [{ name, pid: Number(readFileSync(f, 'utf8').trim()) }] : [];
  });
const takeDown = (labs, why) => {
  for (const { name } of labs) {
    console.error(`run-tests: lab ${name} ${why}: taking it down`);
    spawnSync(process.execPath, [WEFT, 'lab', 'down', '--name', name], {
      stdio: 'inherit',
      timeout: 300_000,
    });
  }
};
takeDown(
  ownedLabs().filter((l) => !alive(l.pid)),
  'was left by a test run that no longer runs',
);

process.env.WEFT_LAB_OWNER = String(process.pid);
const a = runGroup(shared, concurrency);
const b = runGroup(alone, 1);
// Every test removes its lab, on failure too; one that did not is named here (and its lab removed).
const leaked = ownedLabs().filter((l) => l.pid === process.pid);
takeDown(leaked, 'was left behind by a test of this run');
process.exit(a || b);
