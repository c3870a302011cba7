// crictl's streaming TLS flags (--tls-ca, --tls-cert, --tls-key, --tls-sni) as berthctl's
// streaming client uses them against an https server made here (certificates from
// Debian's openssl): no flags is crictl's Insecure, a client pair is presented and the
// server verified against the CA under the server name; over SPDY and WebSocket alike.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { spdyConnect, streamTlsOptions, wsConnect, type StreamTls } from '../src/cli/stream-client.js';
import { makeClusterPki } from './helpers/kube-pki.js';
import { tempDir } from './helpers/tmp.js';

test('streaming over https: crictl TLS flags verify the server and present the client pair', async (t) => {
  const pki = await makeClusterPki(await tempDir(t, 'stream-tls-'), { client: '/CN=berthctl-client' });
  // Refuses every upgrade, saying which client certificate it saw: the handshake is what is tested.
  const server = createServer({ cert: await readFile(pki.server.cert), key: await readFile(pki.server.key), ca: await readFile(pki.caCert), requestCert: true, rejectUnauthorized: false }, (request, response) => {
    const peer = (request.socket as TLSSocket).getPeerCertificate();
    response.writeHead(400).end(`no upgrade for ${peer.subject?.CN ?? 'anonymous'}`);
  });
  server.on('upgrade', (request, socket) => {
    const peer = (request.socket as TLSSocket).getPeerCertificate();
    socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Length: ${`no upgrade for ${peer.subject?.CN ?? 'anonymous'}`.length}\r\n\r\nno upgrade for ${peer.subject?.CN ?? 'anonymous'}`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/exec/x`;
  const pair = { cert: pki.clients.client!.cert, key: pki.clients.client!.key };
  const attempt = async (tls: StreamTls | undefined) => {
    const results: string[] = [];
    for (const connect of [spdyConnect, wsConnect]) {
      results.push(await connect(url, ['v4.channel.k8s.io'], tls).then(() => 'upgraded', (err: Error) => err.message));
    }
    return results;
  };
  // No flags: not verified (crictl's Insecure), no client certificate.
  assert.deepEqual(await attempt(undefined), Array(2).fill('unable to upgrade connection: no upgrade for anonymous'));
  // CA and client pair: verified as "localhost" (crictl's default server name), the pair presented.
  assert.deepEqual(await attempt({ ...pair, ca: pki.caCert }), Array(2).fill('unable to upgrade connection: no upgrade for berthctl-client'));
  // A server name the certificate does not carry, or no CA (the system's roots): refused.
  for (const result of await attempt({ ...pair, ca: pki.caCert, serverName: 'elsewhere.example' })) assert.match(result, /cannot connect to the streaming server .*(altnames|Hostname)/);
  for (const result of await attempt(pair)) assert.match(result, /cannot connect to the streaming server .*(certificate|issuer)/);
  // One of the pair alone: crictl's error.
  assert.throws(() => streamTlsOptions({ cert: pair.cert }), /both flags --tls-cert and --tls-key are required for TLS streaming, only --tls-ca is optional/);
});
