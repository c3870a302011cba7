// berthd's structured log: one JSON object per line on stderr (util/logger.ts).
import type { LogLevel } from '../config/config.js';
import { createJsonLogger, type Logger } from '../util/logger.js';

export function createLogger(level: LogLevel): Logger {
  return createJsonLogger({ level, base: { pid: process.pid } });
}
