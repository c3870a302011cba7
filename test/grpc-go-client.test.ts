// The real clients: grpc-go, old and current, against berthd's own HTTP/2 transport.
// grpc-go 1.51 (crictl/critest 1.26 and kubelets of that era) sends the dial target, here
// the socket's path, as :authority, which Node's HTTP/2 server refused and berth's takes
// as Go's HTTP/2 does; both use Huffman coding and HPACK's dynamic table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startBerthd } from './helpers/berthd.js';
import { isRoot, PACKAGE_ROOT } from './helpers/paths.js';
import { run } from './helpers/processes.js';

/** Builds test/grpc-go-client against one grpc-go release (cached); its path. */
async function grpcGoClient(version: string): Promise<string> {
  const built = await run('bash', [join(PACKAGE_ROOT, 'scripts/build-grpc-go-client.sh'), version], { timeoutMs: 600_000 });
  assert.equal(built.code, 0, `building the grpc-go ${version} client failed:\n${built.stderr}`);
  return built.stdout.trim();
}

// grpc-go 1.51 is what crictl/critest 1.26 and kubelets of that era carry: it sends the
// dial target (here the socket path) as :authority. The current one sends what it sends.
for (const version of ['v1.51.0', 'v1.85.0']) {
  test(`a grpc-go ${version} client gets answers from berthd, dialing the socket path and unix://`, { skip: !isRoot && 'berthd needs root' }, async (t) => {
    const client = await grpcGoClient(version);
    const berthd = await startBerthd(t);
    for (const target of [berthd.socket, `unix://${berthd.socket}`]) {
      const result = await run(client, [target, berthd.socket], { timeoutMs: 30_000 });
      assert.equal(result.code, 0, `target ${target}: ${result.stdout}${result.stderr}`);
      const answers = result.stdout.trim().split('\n');
      assert.equal(answers.length, 3, result.stdout);
      for (const answer of answers) assert.match(answer, /^ok ".*berth.*v1"$/);
    }
  });
}
