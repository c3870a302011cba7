// A server's unix socket (berthd's CRI socket, berth-csi's): a stale socket left by a
// crash is replaced, a live one (another instance serving) is refused without being
// touched, and the new one is root-only (0660).
import { connect } from 'node:net';
import { chmod, lstat, mkdir, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { alreadyExists, failedPrecondition } from '../errors.js';

/** `program` names who would be serving there, for the message when one is. */
export async function claimSocketPath(path: string, program = 'berthd'): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o711 });
  let stat;
  try {
    stat = await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!stat.isSocket()) {
    throw failedPrecondition(`${path} exists and is not a socket; refusing to replace it`);
  }
  if (await isListening(path)) {
    throw alreadyExists(`another process is already serving on ${path} (is ${program} running?)`);
  }
  await unlink(path);
}

export function isListening(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Runs bind with a umask that creates the socket 0660 from the start, then makes sure of it. */
export async function bindRootOnly<T>(path: string, bind: () => Promise<T>): Promise<T> {
  const previous = process.umask(0o117);
  try {
    return await bind();
  } finally {
    process.umask(previous);
    await chmod(path, 0o660).catch(() => undefined);
  }
}
