// bench/critest: cri-tools' `critest -benchmark` (the pod, container and image
// benchmarks) against berthd, Debian's containerd 1.6 and, when built, containerd 2.x,
// on one local registry and pod network. The runtimes take turns (--rounds N, the order
// turned each round, default 2) so a machine shared with other work slows all alike;
// each operation's figure is the median over rounds of critest's per-run medians, in ms,
// with berth/containerd ratios. Never fails on time.
//   node dist/bench/critest.js [--rounds N] [--samples N] [--baseline OTHER/dist/src/bin/berthd.js]
// Needs what scripts/conformance.sh builds once into /var/cache/berth-test-tools (critest,
// the static busybox, the stand-ins): run it once first.
import { execFileSync, spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { removeAllPods, startBerthd } from '../test/helpers/berthd.js';
import { containerdVersion, startContainerd } from '../test/helpers/containerd.js';
import { startPodNetwork } from '../test/helpers/pod-network.js';
import { startRegistry } from '../test/helpers/registry.js';
import { tempDir } from '../test/helpers/tmp.js';
import { CONTAINERD_SANDBOX_IMAGE, UPSTREAM_HOSTS, conformanceImages, pushConformanceImages } from '../test/conformance/images.js';
import { benchArgs, readBenchMedians, writeBenchParams } from '../test/conformance/critest-bench.js';
import { PACKAGE_ROOT } from '../test/helpers/paths.js';
import { median, requireRoot, Scope, stringArg } from './harness.js';
import { containerd2Binary } from './targets.js';

interface Runtime {
  name: string;
  start(scope: Scope): Promise<string>;
}

function run(command: string, argv: string[], logFile: string, cwd: string): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const out = createWriteStream(logFile);
    const child = spawn(command, argv, { cwd, env: { PATH: process.env.PATH, HOME: process.env.HOME, TMPDIR: cwd }, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.pipe(out, { end: false });
    child.stderr.pipe(out, { end: false });
    child.on('error', reject);
    child.on('close', (code) => out.end(() => resolve(code)));
  });
}

async function main(): Promise<void> {
  requireRoot();
  const rounds = Number(stringArg('--rounds') ?? 2);
  const samples = Number(stringArg('--samples') ?? 20);
  const cache = process.env.BERTH_TOOLS_CACHE ?? '/var/cache/berth-test-tools';
  const critest = join(execFileSync('bash', [join(PACKAGE_ROOT, 'scripts/build-cri-tools.sh')], { encoding: 'utf8' }).trim().split('\n').at(-1)!, 'critest');
  const busybox = join(cache, 'busybox-v2');
  const standinsHash = execFileSync('bash', ['-c', 'cat test/conformance/standins/*.c | sha256sum | cut -c1-16'], { cwd: PACKAGE_ROOT, encoding: 'utf8' }).trim();
  const standins = join(cache, `standins-${standinsHash}`);
  for (const path of [busybox, standins]) {
    if (!existsSync(path)) throw new Error(`${path} is missing: run bash scripts/conformance.sh once (it builds the benchmark's images)`);
  }
  const scope = new Scope();
  try {
    const work = await tempDir(scope, 'critest-bench-');
    const registry = await startRegistry(scope);
    await pushConformanceImages(registry, conformanceImages({ busyboxDir: busybox, standinsDir: standins, catatonit: '/usr/bin/catatonit' }));
    const network = await startPodNetwork(scope);
    const berthToml = `${UPSTREAM_HOSTS.map((host) => `[registries."${host}"]\nmirrors = ["${registry.url}"]`).join('\n')}\n[registries."${registry.host}"]\ninsecure = true\n`;
    const containerdToml = `sandbox_image = "${CONTAINERD_SANDBOX_IMAGE}"\n  ${UPSTREAM_HOSTS.map((host) => `[plugins."io.containerd.grpc.v1.cri".registry.mirrors."${host}"]\n    endpoint = ["${registry.url}"]`).join('\n  ')}\n`;
    const runtimes: Runtime[] = [
      { name: 'berth', start: async (s) => (await startBerthd(s, { cniConfDir: network.confDir, logLevel: 'warn', extraToml: berthToml })).endpoint },
    ];
    const baseline = stringArg('--baseline');
    if (baseline) {
      runtimes.push({ name: 'berth-base', start: async (s) => (await startBerthd(s, { cniConfDir: network.confDir, logLevel: 'warn', extraToml: berthToml, binary: baseline })).endpoint });
    }
    const startCtrd = (binary?: string) => async (s: Scope) => {
      const containerd = await startContainerd(s, { cniConfDir: network.confDir, criToml: containerdToml, binary });
      s.after(() => removeAllPods(containerd.endpoint).catch(() => undefined));
      return containerd.endpoint;
    };
    runtimes.push({ name: `containerd ${(await containerdVersion()).replace(/~.*/, '')}`, start: startCtrd() });
    const cd2 = containerd2Binary();
    if (cd2) runtimes.push({ name: 'containerd 2', start: startCtrd(cd2) });
    else process.stdout.write('containerd 2.x left out: not built (bash scripts/build-containerd2.sh builds it)\n');

    const results = new Map<string, Map<string, number[]>>();
    for (let round = 0; round < rounds; round++) {
      for (let k = 0; k < runtimes.length; k++) {
        const runtime = runtimes[(round + k) % runtimes.length]!;
        const runScope = new Scope();
        try {
          const endpoint = await runtime.start(runScope);
          const dir = join(work, `${runtime.name.replace(/\W+/g, '-')}-${round}`);
          const cwd = join(dir, 'tmp');
          mkdirSync(cwd, { recursive: true });
          const params = writeBenchParams(dir, samples);
          const started = Date.now();
          const code = await run(critest, benchArgs(endpoint, params, dir, '15m'), join(dir, 'critest.log'), cwd);
          const medians = readBenchMedians(dir);
          process.stdout.write(`round ${round + 1}: ${runtime.name}: critest exit ${code}, ${medians.size} operations, ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
          for (const [op, ms] of medians) {
            const byRuntime = results.get(op) ?? new Map<string, number[]>();
            byRuntime.set(runtime.name, [...(byRuntime.get(runtime.name) ?? []), ms]);
            results.set(op, byRuntime);
          }
        } finally {
          await runScope.close();
        }
      }
    }
    const names = runtimes.map((r) => r.name);
    const containerds = names.filter((n) => n.startsWith('containerd'));
    process.stdout.write(`\ncritest -benchmark, ${samples} samples per benchmark, ${rounds} rounds; median ms; ratios berth/<runtime>\n`);
    process.stdout.write(`${'operation'.padEnd(58)}${names.map((n) => n.padStart(18)).join('')}${containerds.map((n) => `berth/${n}`.padStart(26)).join('')}\n`);
    for (const op of [...results.keys()].sort()) {
      const byRuntime = results.get(op)!;
      const value = (n: string) => (byRuntime.has(n) ? median(byRuntime.get(n)!) : undefined);
      const cells = names.map((n) => (value(n) === undefined ? 'n/a' : value(n)!.toFixed(2)).padStart(18)).join('');
      const ratios = containerds.map((n) => (value('berth') && value(n) ? (value('berth')! / value(n)!).toFixed(2) : 'n/a').padStart(26)).join('');
      process.stdout.write(`${op.padEnd(58)}${cells}${ratios}\n`);
    }
  } finally {
    await scope.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
