// berth's structured log: one JSON object per line, the shape pino writes
// ({"level":30,"time":"<ISO>","pid":N,...bindings,...fields,"msg":"..."}, levels 10 to
// 60), in the few lines berthd needs instead of pino and its seven packages (which cost
// idle memory: a worker-thread transport, serializers, a redactor, all loaded at start).
// A level below the configured one is a no-op method: no line is built; `enabled` tells
// a hot path (the RPC wrapper) not to build the line's fields either.
import { writeSync } from 'node:fs';

export const LOGGER_LEVELS = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 } as const;
export type LoggerLevel = keyof typeof LOGGER_LEVELS;

export interface LogFn {
  (fields: object, msg?: string): void;
  (msg: string): void;
}

export interface Logger {
  trace: LogFn;
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  fatal: LogFn;
  /** A logger whose lines carry these fields too (after the parent's). */
  child(bindings: Record<string, unknown>): Logger;
  /** True when lines of this level are written: a hot path builds a line's fields only then. */
  enabled(level: LoggerLevel): boolean;
}

export interface LoggerOptions {
  /** The lowest level written; 'silent' writes nothing. */
  level: LoggerLevel | 'silent';
  /** Fields of every line, after level and time (berthd: its pid). */
  base?: Record<string, unknown>;
  /** Where lines go; default: synchronously to fd 2. */
  write?: (line: string) => void;
}

const noop: LogFn = () => undefined;

/** A logger writing JSON lines (stderr by default). */
export function createJsonLogger(options: LoggerOptions): Logger {
  const write = options.write ?? writeToStderr;
  const threshold = options.level === 'silent' ? Infinity : LOGGER_LEVELS[options.level];
  const make = (prefix: string): Logger => {
    const method = (level: LoggerLevel): LogFn => {
      const number = LOGGER_LEVELS[level];
      if (number < threshold) return noop;
      const head = `{"level":${number},"time":"`;
      return (fieldsOrMsg: object | string, msg?: string) => {
        let line = `${head}${new Date().toISOString()}"${prefix}`;
        if (typeof fieldsOrMsg === 'string') msg = fieldsOrMsg;
        else line += fieldsOf(fieldsOrMsg instanceof Error ? { err: fieldsOrMsg } : fieldsOrMsg);
        if (msg !== undefined) line += `,"msg":${JSON.stringify(msg)}`;
        write(`${line}}\n`);
      };
    };
    return {
      trace: method('trace'),
      debug: method('debug'),
      info: method('info'),
      warn: method('warn'),
      error: method('error'),
      fatal: method('fatal'),
      child: (bindings) => make(prefix + fieldsOf(bindings)),
      enabled: (level) => LOGGER_LEVELS[level] >= threshold,
    };
  };
  return make(options.base ? fieldsOf(options.base) : '');
}

/** `,"a":1,"b":"x"` for an object's own fields (undefined ones left out), never throwing. */
function fieldsOf(fields: object): string {
  let text: string;
  try {
    text = JSON.stringify(fields, jsonValue);
  } catch (err) {
    text = JSON.stringify({ logError: `a log field could not be written: ${(err as Error).message}` });
  }
  return text.length > 2 ? `,${text.slice(1, -1)}` : '';
}

function jsonValue(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return Number(value);
  if (value instanceof Error) return { type: value.name, message: value.message, stack: value.stack };
  return value;
}

// As pino's synchronous destination: a full pipe (EAGAIN) is waited for, a closed one
// (EPIPE) drops the line.
const pause = new Int32Array(new SharedArrayBuffer(4));
function writeToStderr(line: string): void {
  let buffer = Buffer.from(line);
  for (let tries = 0; buffer.length > 0; ) {
    try {
      buffer = buffer.subarray(writeSync(2, buffer));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN' || ++tries > 1000) return;
      Atomics.wait(pause, 0, 0, 10);
    }
  }
}
