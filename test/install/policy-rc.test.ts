// scripts/install.sh keeps package postinsts from starting services with /usr/sbin/policy-rc.d during
// the install only: it removes the one it created on every way out (success, a failing apt-get), and
// keeps one that the machine had before. Run in a private mount namespace whose /usr/sbin is an overlay
// on a tmpfs, so the machine's own /usr/sbin and its apt stay untouched; apt-get is a shim first in PATH
// (the real one never runs) and WEFT_EXTRA_PACKAGES names a package that is not installed, so that
// install.sh takes its apt path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { run } from '../../src/util/exec.js';

const INSTALL = fileURLToPath(new URL('../../../scripts/install.sh', import.meta.url));

const SCENARIO = `
set -u
T=$1 INSTALL=$2
mount -t tmpfs tmpfs "$T"
mkdir -p "$T/up" "$T/work" "$T/bin"
mount -t overlay overlay -o "lowerdir=/usr/sbin,upperdir=$T/up,workdir=$T/work" /usr/sbin
cat > "$T/bin/apt-get" <<'SHIM'
#!/bin/sh
# apt-get for the test: records whether policy-rc.d is in place; fails "install" when asked to
[ -e /usr/sbin/policy-rc.d ] && held=held || held=free
echo "apt-get $1 $held" >> "$APT_LOG"
[ "$1" = install ] && [ -n "\${APT_FAIL:-}" ] && { echo "E: Unable to locate package $APT_FAIL"; exit 100; }
exit 0
SHIM
chmod +x "$T/bin/apt-get"
export APT_LOG="$T/apt.log" WEFT_EXTRA_PACKAGES=weft-test-not-a-package PATH="$T/bin:$PATH"
state() { if [ -e /usr/sbin/policy-rc.d ]; then echo "state $1 present $(md5sum < /usr/sbin/policy-rc.d | cut -c1-8)"; else echo "state $1 absent"; fi; }
rm -f /usr/sbin/policy-rc.d
state before
bash "$INSTALL" --packages-only >/dev/null 2>&1; echo "run1 exit $?"; state run1
bash "$INSTALL" --packages-only >/dev/null 2>&1; echo "run2 exit $?"; state run2
APT_FAIL=weft-test-not-a-package bash "$INSTALL" --packages-only >/dev/null 2>&1; echo "run3 exit $?"; state run3
printf '#!/bin/sh\\n# the machine s own\\nexit 101\\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
state own
APT_FAIL=weft-test-not-a-package bash "$INSTALL" --packages-only >/dev/null 2>&1; echo "run4 exit $?"; state run4
bash "$INSTALL" --packages-only >/dev/null 2>&1; echo "run5 exit $?"; state run5
echo "---"; cat "$APT_LOG"
`;

test('install.sh removes the policy-rc.d it created, on success and on failure, and keeps the machine’s own', async (t) => {
  const dir = await mkdtemp('/tmp/weft-install-test-');
  t.after(() => rm(dir, { recursive: true, force: true }));
  const r = await run(
    'unshare',
    ['-m', '--propagation', 'private', 'bash', '-c', SCENARIO, 'scenario', dir, INSTALL],
    {
      allowFailure: true,
      timeoutMs: 120_000,
    },
  );
  assert.equal(r.code, 0, r.stderr);
  const [states, aptLog] = r.stdout.split('---\n') as [string, string];
  const line = (key: string) => states.split('\n').find((l) => l.startsWith(`${key} `)) ?? '';
  assert.equal(line('state before'), 'state before absent');
  assert.equal(line('state run1'), 'state run1 absent', 'first run left no policy-rc.d');
  assert.equal(line('state run2'), 'state run2 absent', 'second run left no policy-rc.d');
  assert.match(line('run3 exit'), /^run3 exit [1-9]/, 'the failing apt-get made install.sh fail');
  assert.equal(line('state run3'), 'state run3 absent', 'a failed run left no policy-rc.d');
  const own = line('state own').split(' ')[3];
  assert.ok(own, 'the machine’s own policy-rc.d is in place');
  assert.equal(
    line('state run4'),
    `state run4 present ${own}`,
    'the machine’s own policy-rc.d survives a failed run',
  );
  assert.equal(line('state run5'), `state run5 present ${own}`, '… and a successful one');
  // While apt-get installed, services were held in every run.
  const installs = aptLog.split('\n').filter((l) => l.startsWith('apt-get install'));
  assert.equal(installs.length, 5, aptLog);
  assert.ok(
    installs.every((l) => l.endsWith(' held')),
    aptLog,
  );
});
