// A registry token service of the test's own (the role auth.docker.io plays for Docker
// Hub): it hands out JWTs signed with a key whose certificate the registry trusts, so
// the real registry checks real bearer tokens. Anonymous pull tokens by default; with
// `users`, only those credentials get tokens.
import { createServer, type IncomingMessage } from 'node:http';
import { createSign, randomBytes, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { run } from './processes.js';
import { tempDir } from './tmp.js';
import { cleanup } from './scope.js';

export interface TestTokenService {
  realm: string;
  service: string;
  issuer: string;
  rootCertBundle: string;
  /** Token requests seen, as "user scope" lines (user "-" when anonymous). */
  requests: string[];
  /** A token for any scope, for pushing test images. */
  issue(scope: string): string;
}

export async function startTokenService(t: { after(fn: () => unknown): void }, options: { users?: Record<string, string> } = {}): Promise<TestTokenService> {
  const dir = await tempDir(t, 'tokens-');
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  const made = await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '1', '-subj', '/CN=berth-test-token-issuer']);
  if (made.code !== 0) throw new Error(`openssl: ${made.stderr}`);
  const key = await readFile(keyPath, 'utf8');
  const certDer = new X509Certificate(await readFile(certPath)).raw.toString('base64');
  const service = 'berth-test-registry';
  const issuer = 'berth-test-issuer';
  const requests: string[] = [];

  const issue = (scope: string, subject = ''): string => {
    const now = Math.floor(Date.now() / 1000);
    const access = scope
      .split(' ')
      .filter(Boolean)
      .map((s) => {
        const [type, name, actions] = s.split(':');
        return { type, name, actions: (actions ?? '').split(',') };
      });
    const header = { typ: 'JWT', alg: 'RS256', x5c: [certDer] };
    const claims = { iss: issuer, sub: subject, aud: service, exp: now + 300, nbf: now - 10, iat: now, jti: randomBytes(8).toString('hex'), access };
    const encode = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const signing = `${encode(header)}.${encode(claims)}`;
    const signature = createSign('RSA-SHA256').update(signing).sign(key).toString('base64url');
    return `${signing}.${signature}`;
  };

  const server = createServer((req: IncomingMessage, res) => {
    const url = new URL(req.url ?? '/', 'http://token');
    const scope = url.searchParams.get('scope') ?? '';
    let user = '-';
    const authorization = req.headers.authorization;
    if (authorization?.startsWith('Basic ')) {
      const [name, password] = Buffer.from(authorization.slice(6), 'base64').toString().split(':');
      if (!options.users || options.users[name!] !== password) {
        res.writeHead(401).end();
        requests.push(`${name} ${scope} refused`);
        return;
      }
      user = name!;
    } else if (options.users) {
      res.writeHead(401).end();
      requests.push(`- ${scope} refused`);
      return;
    }
    requests.push(`${user} ${scope}`);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: issue(scope, user), expires_in: 300 }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanup(t).after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as AddressInfo;
  return { realm: `http://127.0.0.1:${port}/token`, service, issuer, rootCertBundle: certPath, requests, issue };
}
