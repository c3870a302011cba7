// The few file operations Node has no call for: device nodes and fifos (mknod) and
// extended attributes (setfattr from Debian's attr). Batched, so a layer with many
// whiteouts costs one process, not one per file.
import { runCommand } from './command.js';

export interface DeviceNode {
  path: string;
  kind: 'c' | 'b' | 'p';
  major: number;
  minor: number;
}

export async function makeNodes(nodes: DeviceNode[]): Promise<void> {
  if (nodes.length === 0) return;
  // One shell loop over (path kind major minor) quadruples.
  const args = nodes.flatMap((n) => [n.path, n.kind, String(n.major), String(n.minor)]);
  const script = 'while [ $# -gt 0 ]; do if [ "$2" = p ]; then mknod -- "$1" p; else mknod -- "$1" "$2" "$3" "$4"; fi || exit 1; shift 4; done';
  await runCommand('sh', ['-c', script, 'sh', ...args], 'creating device nodes');
}

export interface XattrSetting {
  path: string;
  name: string;
  value: Buffer;
}

/** Sets xattrs on files (symlinks themselves, not their targets) in one setfattr run. */
export async function setXattrs(settings: XattrSetting[]): Promise<void> {
  if (settings.length === 0) return;
  // setfattr --restore reads getfattr's dump format; values as base64 (0s…) are exact.
  const dump = settings
    .map((s) => `# file: ${escapeDumpPath(s.path)}\n${s.name}=0s${s.value.toString('base64')}\n`)
    .join('\n');
  await runCommand('setfattr', ['-h', '--restore=-'], 'setting extended attributes', { input: dump });
}

/** getfattr escapes newlines, backslashes and non-printables in paths as octal. */
function escapeDumpPath(path: string): string {
  return Array.from(Buffer.from(path))
    .map((b) => (b < 0x21 || b > 0x7e || b === 0x5c ? `\\${b.toString(8).padStart(3, '0')}` : String.fromCharCode(b)))
    .join('');
}
