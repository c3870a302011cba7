// Whether CRIU can checkpoint on this host: `criu check` once per berthd (its answer
// depends on the kernel and the criu binary, neither of which changes under berthd).
import { spawn } from 'node:child_process';

export interface CriuStatus {
  usable: boolean;
  /** What `criu check` said (or why it could not run), for the error a client gets. */
  detail: string;
}

let probe: Promise<CriuStatus> | undefined;

export function criuStatus(criu = 'criu'): Promise<CriuStatus> {
  probe ??= new Promise((resolve) => {
    const child = spawn(criu, ['check'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', (err: NodeJS.ErrnoException) =>
      resolve({ usable: false, detail: err.code === 'ENOENT' ? `${criu} is not installed (Debian package criu)` : `cannot run ${criu}: ${err.message}` }),
    );
    child.on('close', (code) => {
      const said = output.trim().split('\n').filter((l) => l !== '').join('; ');
      resolve(code === 0 ? { usable: true, detail: said } : { usable: false, detail: `\`${criu} check\` fails (exit ${code}): ${said}` });
    });
  });
  return probe;
}
