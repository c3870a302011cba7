// HPACK (RFC 7541) as berth's server decodes it: the specification's own examples
// (Appendix C.4: Huffman-coded requests sharing a dynamic table), the Huffman code's
// derivation from its lengths, and the encoder's output read back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeHeaderBlock, HpackDecoder, HpackError, huffmanDecode, HUFFMAN_CODES } from '../src/server/hpack.js';

const hex = (text: string) => Buffer.from(text.replace(/\s+/g, ''), 'hex');

test('the Huffman code derived from its lengths matches Appendix B where checked', () => {
  assert.deepEqual(HUFFMAN_CODES[0], [0x1ff8, 13]);
  assert.deepEqual(HUFFMAN_CODES[' '.charCodeAt(0)], [0x14, 6]);
  assert.deepEqual(HUFFMAN_CODES['a'.charCodeAt(0)], [0x3, 5]);
  assert.deepEqual(HUFFMAN_CODES['~'.charCodeAt(0)], [0x1ffd, 13]);
  assert.deepEqual(HUFFMAN_CODES[255], [0x3ffffee, 26]);
  assert.deepEqual(HUFFMAN_CODES[256], [0x3fffffff, 30], 'EOS');
  assert.equal(huffmanDecode(hex('f1e3 c2e5 f23a 6ba0 ab90 f4ff')), 'www.example.com');
  assert.throws(() => huffmanDecode(hex('f1e3 c2e5 f23a 6ba0 ab90 f400')), HpackError, 'padding of zeros');
  assert.throws(() => huffmanDecode(hex('ffffffff')), HpackError, 'EOS in the string');
});

test('RFC 7541 C.4: three requests with Huffman coding and one dynamic table', () => {
  const decoder = new HpackDecoder();
  assert.deepEqual(decoder.decode(hex('8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff')), [
    [':method', 'GET'],
    [':scheme', 'http'],
    [':path', '/'],
    [':authority', 'www.example.com'],
  ]);
  assert.deepEqual(decoder.decode(hex('8286 84be 5886 a8eb 1064 9cbf')), [
    [':method', 'GET'],
    [':scheme', 'http'],
    [':path', '/'],
    [':authority', 'www.example.com'],
    ['cache-control', 'no-cache'],
  ]);
  assert.deepEqual(decoder.decode(hex('8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf')), [
    [':method', 'GET'],
    [':scheme', 'https'],
    [':path', '/index.html'],
    [':authority', 'www.example.com'],
    ['custom-key', 'custom-value'],
  ]);
});

test('a table size update evicts; an index past the table, or an update over the limit, is an error', () => {
  const decoder = new HpackDecoder();
  decoder.decode(hex('4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf'));
  assert.deepEqual(decoder.decode(hex('be')), [['custom-key', 'custom-value']]);
  // Size 0 empties the table.
  assert.throws(() => decoder.decode(hex('20 be')), HpackError);
  assert.throws(() => new HpackDecoder().decode(hex('3fe21f')), HpackError, 'an update to 4097, over the 4096 announced');
  assert.throws(() => new HpackDecoder().decode(hex('80')), HpackError, 'index 0');
});

test('the encoder: static indexes and literals, read back by the decoder', () => {
  const fields = [
    [':status', '200'],
    ['content-type', 'application/grpc'],
    ['grpc-status', '13'],
    ['grpc-message', 'x'.repeat(300)],
  ] as const;
  const block = encodeHeaderBlock(fields);
  assert.equal(block[0], 0x88, ':status 200 is static index 8');
  assert.deepEqual(new HpackDecoder().decode(block), fields);
});
