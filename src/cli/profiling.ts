// crictl's --profile-cpu and --profile-mem, in Node's terms: a V8 CPU profile (the
// .cpuprofile JSON that Chrome DevTools and speedscope open) recorded from the command's
// start, and a V8 heap snapshot (.heapsnapshot) taken at its end; both are written when
// berthctl exits, however it exits. Loaded only when one of the flags is given.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { resolve } from 'node:path';
import { writeHeapSnapshot } from 'node:v8';

export function startProfiling(options: { cpu?: string; mem?: string }): void {
  let session: Session | undefined;
  if (options.cpu) {
    session = new Session();
    session.connect();
    // A same-thread inspector session answers synchronously, so this works in 'exit'.
    session.post('Profiler.enable');
    session.post('Profiler.start');
  }
  process.once('exit', () => {
    if (session && options.cpu) {
      const path = resolve(options.cpu);
      session.post('Profiler.stop', (err, result) => {
        if (err) process.stderr.write(`berthctl: could not write the CPU profile ${path}: ${err.message}\n`);
        else writeFileSync(path, JSON.stringify(result.profile));
      });
      session.disconnect();
    }
    if (options.mem) {
      const path = resolve(options.mem);
      try {
        writeHeapSnapshot(path);
      } catch (err) {
        process.stderr.write(`berthctl: could not write the memory profile ${path}: ${(err as Error).message}\n`);
      }
    }
  });
}
