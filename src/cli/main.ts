// berthctl's run: parse the command line, run the verb, and print a failure as one line
// with exit status 1. Shared by the entry point (bin/berthctl.ts) and the V8 startup
// snapshot's (bin/berthctl-snapshot.ts).
import { berthctlProgram } from './program.js';
import { CallError } from './runtime-client.js';

export function runBerthctl(argv: readonly string[] = process.argv): Promise<void> {
  return berthctlProgram()
    .parseAsync([...argv])
    .then(
      () => undefined,
      (err: unknown) => {
        const message = err instanceof CallError || err instanceof Error ? err.message : String(err);
        process.stderr.write(`berthctl: ${message}\n`);
        process.exitCode = 1;
      },
    );
}
