// The gRPC wire helpers berth's own server and client share: frames cut anywhere come
// back whole, limits and compression are refused with the status a peer expects, and
// grpc-timeout / grpc-message round-trip as the gRPC HTTP/2 protocol spells them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  decodeGrpcMessage,
  encodeGrpcMessage,
  formatGrpcTimeout,
  frameMessage,
  FrameError,
  GrpcStatus,
  MessageDeframer,
  parseGrpcTimeout,
} from '../src/server/grpc-wire.js';

test('frames split at every byte boundary come back as the same messages', () => {
  const messages = [Buffer.from('hello'), Buffer.alloc(0), Buffer.alloc(70_000, 7)];
  const wire = Buffer.concat(messages.map(frameMessage));
  for (const cut of [1, 3, 5, 6, 13, 4096]) {
    const deframer = new MessageDeframer(1 << 20);
    const seen: Buffer[] = [];
    for (let at = 0; at < wire.length; at += cut) seen.push(...deframer.push(wire.subarray(at, at + cut)));
    assert.deepEqual(seen.map((m) => m.toString('hex')), messages.map((m) => m.toString('hex')), `chunks of ${cut}`);
    assert.equal(deframer.hasPartialFrame, false);
  }
  const truncated = new MessageDeframer(1 << 20);
  assert.deepEqual(truncated.push(wire.subarray(0, 8)), []);
  assert.equal(truncated.hasPartialFrame, true);
});

test('an oversized or compressed frame is refused with the status grpc-go gives', () => {
  const big = new MessageDeframer(10);
  assert.throws(() => big.push(frameMessage(Buffer.alloc(11))), (err: unknown) =>
    err instanceof FrameError && err.status === GrpcStatus.RESOURCE_EXHAUSTED && /11 vs\. 10/.test(err.message));
  const compressed = frameMessage(Buffer.from('x'));
  compressed[0] = 1;
  assert.throws(() => new MessageDeframer(10).push(compressed), (err: unknown) =>
    err instanceof FrameError && err.status === GrpcStatus.UNIMPLEMENTED);
});

test('grpc-timeout parses every unit and formats within 8 digits', () => {
  assert.equal(parseGrpcTimeout('100m'), 100);
  assert.equal(parseGrpcTimeout('2S'), 2000);
  assert.equal(parseGrpcTimeout('1M'), 60_000);
  assert.equal(parseGrpcTimeout('1H'), 3_600_000);
  assert.equal(parseGrpcTimeout('5000u'), 5);
  assert.equal(parseGrpcTimeout('123456789m'), undefined, 'nine digits');
  assert.equal(parseGrpcTimeout('10x'), undefined);
  for (const bad of ['', 'm', '-1m', '1.5S', ' 1m', '1 m', '１m', 'S1']) assert.equal(parseGrpcTimeout(bad), undefined, JSON.stringify(bad));
  assert.equal(parseGrpcTimeout('99999999S'), 99_999_999_000, 'eight digits');
  assert.equal(parseGrpcTimeout('0n'), 0);
  assert.equal(parseGrpcTimeout(undefined), undefined);
  assert.equal(formatGrpcTimeout(1500), '1500m');
  assert.equal(formatGrpcTimeout(1e9), '1000000S');
  for (const ms of [1, 999, 1e8, 1e12]) assert.ok(parseGrpcTimeout(formatGrpcTimeout(ms))! >= ms);
});

test('grpc-message percent-encoding round-trips unicode, percent signs and newlines', () => {
  for (const text of ['plain text', '100% done', 'line\nbreak', 'pod "café" ✓']) {
    const encoded = encodeGrpcMessage(text);
    assert.match(encoded, /^[\x20-\x7e]*$/);
    assert.equal(decodeGrpcMessage(encoded), text);
  }
  assert.equal(encodeGrpcMessage('a%b'), 'a%25b');
  assert.equal(decodeGrpcMessage('bad %zz escape'), 'bad %zz escape');
});
