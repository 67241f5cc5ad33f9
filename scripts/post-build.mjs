// Marks the CLI entry points executable after tsc (tsc does not keep file modes).
import { chmodSync, existsSync } from 'node:fs';
for (const f of ['dist/src/cli/weft.js', 'dist/src/cni/main.js']) if (existsSync(f)) chmodSync(f, 0o755);
