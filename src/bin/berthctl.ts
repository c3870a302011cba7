#!/usr/bin/env node
// berthctl: a crictl-compatible command line for any CRI runtime (berthd by default).
import { berthctlProgram } from '../cli/program.js';
import { CallError } from '../cli/runtime-client.js';

try {
  await berthctlProgram().parseAsync();
} catch (err) {
  const message = err instanceof CallError || err instanceof Error ? err.message : String(err);
  process.stderr.write(`berthctl: ${message}\n`);
  process.exitCode = 1;
}
