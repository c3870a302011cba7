// SPDY receive-side flow control (no root): berthd announces its window once the client
// has spoken, and a peer that ignores windows (as spdystream does) is held back by TCP
// once a stream holds a window's worth of unread data.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { controlFrame, dataFrame, FrameReader, FrameType, HeaderCompressor, encodeHeaderBlock, SpdySession, type SpdyStream } from '../src/stream/spdy.js';

async function socketPair(): Promise<[Socket, Socket]> {
  return new Promise((resolve) => {
    const server = createServer((accepted) => {
      server.close();
      resolve([accepted, client]);
    });
    let client: Socket;
    server.listen(0, '127.0.0.1', () => {
      client = connect((server.address() as { port: number }).port, '127.0.0.1');
    });
  });
}

function u32(...values: number[]): Buffer {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => b.writeUInt32BE(v >>> 0, i * 4));
  return b;
}

test('a peer without flow control is held back by TCP once a stream holds a window of unread data', async () => {
  const [serverSocket, raw] = await socketPair();
  const session = new SpdySession(serverSocket, 'server');
  const streams: SpdyStream[] = [];
  session.on('stream', (s) => {
    s.reply();
    streams.push(s);
  });
  // What the server says: its SETTINGS (after the client's first frame), the SYN_REPLY.
  const frames: ReturnType<FrameReader['push']> = [];
  const reader = new FrameReader();
  raw.on('data', (d: Buffer) => frames.push(...reader.push(d)));
  const compressor = new HeaderCompressor();
  raw.write(controlFrame(FrameType.SynStream, 0, Buffer.concat([u32(1, 0), Buffer.from([0, 0]), compressor.compress(encodeHeaderBlock({ streamtype: 'stdin' }))])));
  // 8 MiB of DATA as fast as the socket takes it, never waiting for a WINDOW_UPDATE.
  const total = 8 * 1024 * 1024;
  const piece = Buffer.alloc(16 * 1024, 7);
  let sent = 0;
  const writer = (async () => {
    while (sent < total) {
      sent += piece.length;
      if (!raw.write(dataFrame(1, sent >= total ? 1 : 0, piece))) await new Promise((r) => raw.once('drain', r));
    }
  })();
  await sleep(500);
  assert.equal(streams.length, 1);
  const settings = frames.find((f) => f.kind === 'control' && f.type === FrameType.Settings);
  assert.ok(settings && settings.kind === 'control', 'the server announced its window');
  assert.equal(settings.payload.readUInt32BE(8), 64 * 1024);
  // Nobody reads the stream: berthd holds a window's worth, the rest waits in TCP's buffers.
  // (a window, plus what the socket had read before it paused)
  assert.ok(streams[0]!.readableLength <= 512 * 1024, `${streams[0]!.readableLength} bytes buffered`);
  assert.ok(serverSocket.bytesRead < 4 * 1024 * 1024, `the server read ${serverSocket.bytesRead} bytes`);
  assert.ok(sent < total, 'the sender is held back');
  // Reading resumes the connection: everything arrives.
  let received = 0;
  for await (const chunk of streams[0]!) received += (chunk as Buffer).length;
  await writer;
  assert.equal(received, total);
  raw.destroy();
  session.destroy();
});

test("berth's own client learns the server's window and both sides acknowledge what they consume", async () => {
  const [serverSocket, clientSocket] = await socketPair();
  const server = new SpdySession(serverSocket, 'server');
  const client = new SpdySession(clientSocket, 'client');
  server.on('stream', (s) => {
    s.reply();
    // A slow reader: 1 MiB through it in small reads (for await would destroy the
    // stream at its end, and the answer could not be written).
    let n = 0;
    s.on('readable', function more() {
      const chunk = s.read(4096) as Buffer | null;
      if (chunk) {
        n += chunk.length;
        setTimeout(more, 1);
      }
    });
    s.on('end', () => s.end(String(n)));
  });
  const stream = await client.openStream({ streamtype: 'stdin' });
  const answer = new Promise<string>((resolve) => {
    let text = '';
    stream.on('data', (d: Buffer) => (text += d.toString()));
    stream.on('end', () => resolve(text));
  });
  stream.end(Buffer.alloc(1024 * 1024, 1));
  assert.equal(await answer, String(1024 * 1024));
  assert.ok(client.peerFlowControl, "the client saw the server's SETTINGS");
  client.close();
  server.destroy();
});
