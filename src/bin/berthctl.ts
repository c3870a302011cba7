#!/usr/bin/env node
// berthctl: a crictl-compatible command line for any CRI runtime (berthd by default).
// No top-level await: scripts/install.sh bundles this entry as CommonJS (see
// scripts/berthctl-launcher.cjs), which has none.
import { berthctlProgram } from '../cli/program.js';
import { CallError } from '../cli/runtime-client.js';

berthctlProgram()
  .parseAsync()
  .catch((err: unknown) => {
    const message = err instanceof CallError || err instanceof Error ? err.message : String(err);
    process.stderr.write(`berthctl: ${message}\n`);
    process.exitCode = 1;
  });
