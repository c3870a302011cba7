// berth's JSON logger: pino's line shape (level number, ISO time, base fields, child
// bindings, fields, msg last), levels below the threshold writing nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createJsonLogger } from '../src/util/logger.js';

function capture(level: Parameters<typeof createJsonLogger>[0]['level']) {
  const lines: string[] = [];
  const log = createJsonLogger({ level, base: { pid: 42 }, write: (line) => lines.push(line) });
  return { log, lines };
}

test('a line is one JSON object in pino\'s shape', () => {
  const { log, lines } = capture('info');
  log.info({ rpc: 'Version', ms: 1.5, gone: undefined, big: 12n }, 'rpc');
  log.warn('plain message');
  assert.equal(lines.length, 2);
  assert.ok(lines.every((l) => l.endsWith('}\n') && !l.slice(0, -1).includes('\n')));
  assert.match(lines[0]!, /^\{"level":30,"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z","pid":42,"rpc":"Version","ms":1.5,"big":12,"msg":"rpc"\}\n$/);
  assert.deepEqual(Object.keys(JSON.parse(lines[1]!)), ['level', 'time', 'pid', 'msg']);
  assert.equal(JSON.parse(lines[1]!).level, 40);
});

test('levels below the configured one write nothing; silent writes nothing at all', () => {
  const { log, lines } = capture('warn');
  log.trace('t');
  log.debug({ a: 1 }, 'd');
  log.info('i');
  log.error('e');
  log.fatal('f');
  assert.deepEqual(lines.map((l) => JSON.parse(l).level), [50, 60]);
  const silent = capture('silent');
  silent.log.fatal('nothing');
  silent.log.child({ a: 1 }).error('nothing');
  assert.deepEqual(silent.lines, []);
});

test('a child adds its bindings after the parent\'s, before the fields', () => {
  const { log, lines } = capture('debug');
  log.child({ stream: 'exec' }).child({ session: 7 }).debug({ protocol: 'v4.channel.k8s.io' }, 'spdy stream');
  const entry = JSON.parse(lines[0]!);
  assert.deepEqual(Object.keys(entry), ['level', 'time', 'pid', 'stream', 'session', 'protocol', 'msg']);
  assert.equal(entry.stream, 'exec');
  assert.equal(entry.session, 7);
});

test('errors are written with type, message and stack; a field that cannot be written does not throw', () => {
  const { log, lines } = capture('info');
  log.error(new RangeError('boom'), 'failed');
  const circular: Record<string, unknown> = {};
  circular.self = circular;
  log.info({ circular }, 'odd');
  const first = JSON.parse(lines[0]!);
  assert.equal(first.err.type, 'RangeError');
  assert.equal(first.err.message, 'boom');
  assert.match(first.err.stack, /RangeError: boom/);
  assert.equal(first.msg, 'failed');
  const second = JSON.parse(lines[1]!);
  assert.match(second.logError, /could not be written/);
  assert.equal(second.msg, 'odd');
});
