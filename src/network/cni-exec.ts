// Running one CNI plugin binary: look it up in the plugin dirs, run it with the
// protocol's environment and the request config on stdin, and turn what it printed into
// a result or an error. Also the VERSION probe, cached per binary.
import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { BerthError, type ErrorCode, deadlineExceeded, internal, failedPrecondition } from '../errors.js';
import { killQuietly } from '../linux/command.js';
import { runViaHelper } from '../linux/spawn-helper.js';

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS' | 'VERSION';

/** A plugin's own error object ({code, msg, details}) surfaced with its code and words. */
export class CniError extends BerthError {
  /** The plugin's CNI error code (1-99 spec-defined, 100+ plugin-specific, 999 Go plugins' "internal"). */
  readonly cniCode: number;
  /** The plugin `type` that failed. */
  readonly plugin: string;
  /** The CNI command it failed on. */
  readonly command: CniCommand;
  readonly msg: string;
  readonly details: string;

  constructor(plugin: string, command: CniCommand, cniCode: number, msg: string, details: string) {
    super(codeFor(cniCode), `plugin ${plugin} failed (CNI code ${cniCode}): ${msg || 'no message'}${details ? `: ${details}` : ''}`);
    this.name = 'CniError';
    this.cniCode = cniCode;
    this.plugin = plugin;
    this.command = command;
    this.msg = msg;
    this.details = details;
  }
}

/**
 * Configuration-shaped failures (bad version, field, variables, config) are the
 * operator's to fix; "try again later" and STATUS's "not available" are transient;
 * everything else (I/O, plugin-specific, Go's catch-all 999) is internal.
 */
function codeFor(cniCode: number): ErrorCode {
  if ([1, 2, 4, 6, 7].includes(cniCode)) return 'FailedPrecondition';
  if ([11, 50, 51].includes(cniCode)) return 'Unavailable';
  return 'Internal';
}

export interface PluginRun {
  command: CniCommand;
  /** The plugin's `type`, for messages. */
  plugin: string;
  path: string;
  env: Record<string, string>;
  stdin: string;
  timeoutMs: number;
}

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** Output beyond this is a broken plugin, not a result: stop collecting. */
const OUTPUT_LIMIT = 4 * 1024 * 1024;

/** Runs a plugin; resolves with its stdout on exit 0, rejects with a CniError or BerthError otherwise. */
export function execPlugin(run: PluginRun): Promise<string> {
  return new Promise((resolve, reject) => {
    // PATH is the one variable of ours plugins need (portmap and friends run iptables);
    // nothing else of berthd's environment leaks into them.
    const env = { PATH: process.env.PATH || DEFAULT_PATH, ...run.env };
    // Through the warm spawning helper where it runs (no fork of berthd, no blocked event loop).
    let pid: number | undefined;
    let helperTimedOut = false;
    const viaHelper = runViaHelper({ argv: [run.path], env, stdin: run.stdin, newSession: true, onPid: (p) => (pid = p) });
    if (viaHelper) {
      const timer = setTimeout(() => {
        helperTimedOut = true;
        // Its own process group, so what it delegated to (IPAM plugins) goes too.
        if (pid) killQuietly(-pid);
      }, run.timeoutMs);
      viaHelper.then(
        ({ code, signal, stdout, stderr }) => {
          clearTimeout(timer);
          if (helperTimedOut) reject(deadlineExceeded(`CNI plugin ${run.plugin} did not finish ${run.command} within ${run.timeoutMs} ms and was killed`));
          else if (code === 0) resolve(stdout);
          else reject(pluginFailure(run, code, signal, stdout, stderr.slice(-64 * 1024)));
        },
        (err: Error) => {
          clearTimeout(timer);
          reject(internal(`cannot run CNI plugin ${run.plugin} (${run.path}): ${err.message}`));
        },
      );
      return;
    }
    // Its own process group, so a timeout also kills what it delegated to (IPAM plugins).
    const child = spawn(run.path, [], { env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      if (stdout.length < OUTPUT_LIMIT) stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-64 * 1024);
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, run.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(internal(`cannot run CNI plugin ${run.plugin} (${run.path}): ${err.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) {
        reject(deadlineExceeded(`CNI plugin ${run.plugin} did not finish ${run.command} within ${run.timeoutMs} ms and was killed`));
      } else if (code === 0) {
        resolve(stdout);
      } else {
        reject(pluginFailure(run, code, signal, stdout, stderr));
      }
    });
    child.stdin.on('error', () => undefined); // a plugin that exits without reading stdin
    child.stdin.end(run.stdin);
  });
}

/** The plugin's JSON error object if it printed one (stdout per the spec, stderr tolerated). */
function pluginFailure(run: PluginRun, code: number | null, signal: NodeJS.Signals | null, stdout: string, stderr: string): BerthError {
  for (const text of [stdout, stderr]) {
    const error = errorObject(text);
    if (error) return new CniError(run.plugin, run.command, error.code, error.msg, error.details);
  }
  const how = signal ? `was killed by ${signal}` : `exited with status ${code}`;
  const said = (stderr.trim() || stdout.trim()).slice(-2000);
  return internal(`CNI plugin ${run.plugin} ${how} on ${run.command}${said ? `: ${said}` : ''}`);
}

function errorObject(text: string): { code: number; msg: string; details: string } | undefined {
  const trimmed = text.trim();
  if (!trimmed.startsWith('{')) return undefined;
  try {
    const doc = JSON.parse(trimmed) as { code?: unknown; msg?: unknown; details?: unknown };
    if (typeof doc.code !== 'number') return undefined;
    return { code: doc.code, msg: typeof doc.msg === 'string' ? doc.msg : '', details: typeof doc.details === 'string' ? doc.details : '' };
  } catch {
    return undefined;
  }
}

/** The first executable `type` in binDirs, in order; a clear error naming the dirs otherwise. */
export async function findPlugin(type: string, binDirs: string[], network: string, role = 'plugin'): Promise<string> {
  for (const dir of binDirs) {
    const path = join(dir, type);
    try {
      if (!(await stat(path)).isFile()) continue;
      await access(path, constants.X_OK);
      return path;
    } catch {
      // Not here (or not executable): the next dir.
    }
  }
  throw failedPrecondition(`CNI ${role} "${type}" of network "${network}" was not found in ${binDirs.length > 0 ? binDirs.join(', ') : '(no plugin dirs configured)'}`);
}

/**
 * Versions each plugin binary says it supports. Cached by path and the file's identity
 * (inode, size, mtime), so upgrading a plugin in place is noticed on the next call.
 */
export class VersionProbe {
  readonly #cache = new Map<string, { key: string; versions: string[] }>();

  constructor(private readonly timeoutMs: number) {}

  async supportedVersions(plugin: string, path: string, cniPath: string): Promise<string[]> {
    const s = await stat(path);
    const key = `${s.ino}:${s.size}:${s.mtimeMs}`;
    const cached = this.#cache.get(path);
    if (cached?.key === key) return cached.versions;
    let stdout: string;
    try {
      stdout = await execPlugin({
        command: 'VERSION',
        plugin,
        path,
        env: { CNI_COMMAND: 'VERSION', CNI_PATH: cniPath },
        stdin: JSON.stringify({ cniVersion: '1.1.0' }),
        timeoutMs: this.timeoutMs,
      });
    } catch (err) {
      throw failedPrecondition(`cannot learn which CNI versions plugin ${plugin} (${path}) supports: ${(err as Error).message}`);
    }
    let versions: unknown;
    try {
      versions = (JSON.parse(stdout) as { supportedVersions?: unknown }).supportedVersions;
    } catch {
      versions = undefined;
    }
    if (!Array.isArray(versions) || versions.some((v) => typeof v !== 'string')) {
      throw failedPrecondition(`CNI plugin ${plugin} (${path}) answered VERSION with no "supportedVersions": ${stdout.trim().slice(0, 200)}`);
    }
    this.#cache.set(path, { key, versions: versions as string[] });
    return versions as string[];
  }
}
