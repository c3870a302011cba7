// The conformance harness runner (scripts/conformance.sh builds the tools, then runs
// this): a local registry serving every image critest pulls, a pod network of its own,
// critest against a private berthd and against Debian's containerd, an optional short
// benchmark, a side-by-side summary. Exit status: 0 when berth passes every spec that
// containerd passes (minus the named skips of skips.ts) and every spec of its own
// baseline (baseline.ts: what it passed before), 1 when it does not, 2 when the harness
// itself could not run.
//   node dist/test/conformance/run.js --critest PATH --busybox DIR --standins DIR --run-dir DIR
import { spawn } from 'node:child_process';
import { appendFileSync, createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { removeAllPods, startBerthd } from '../helpers/berthd.js';
import { containerdVersion, startContainerd } from '../helpers/containerd.js';
import { startPodNetwork } from '../helpers/pod-network.js';
import { startRegistry } from '../helpers/registry.js';
import { Scope } from '../helpers/scope.js';
import { CONTAINERD_SANDBOX_IMAGE, UPSTREAM_HOSTS, conformanceImages, pushConformanceImages } from './images.js';
import { SKIPS, skipFor, skipPattern } from './skips.js';
import { BERTH_BASELINE_FILE, readBerthBaseline } from './baseline.js';
import { benchArgs, readBenchMedians, writeBenchParams } from './critest-bench.js';

type Runtime = 'berth' | 'containerd';

interface SpecResult {
  name: string;
  state: string;
  seconds: number;
  failure?: string;
}

interface RunOutcome {
  runtime: Runtime;
  /** By spec name; empty when critest produced no report. */
  specs: Map<string, SpecResult>;
  seconds: number;
  error?: string;
  /** Operation → median ms, per benchmark file. */
  bench?: Map<string, number>;
}

const { values: args } = parseArgs({
  options: {
    critest: { type: 'string' },
    busybox: { type: 'string' },
    standins: { type: 'string' },
    'run-dir': { type: 'string' },
  },
});
for (const name of ['critest', 'busybox', 'standins', 'run-dir'] as const) {
  if (!args[name]) {
    console.error(`conformance: --${name} is required`);
    process.exit(2);
  }
}
const CRITEST = args.critest!;
const RUN_DIR = args['run-dir']!;
const RUNTIMES = (process.env.BERTH_CONFORMANCE_RUNTIMES ?? 'berth,containerd').split(',').filter(Boolean) as Runtime[];
const BENCH = (process.env.BERTH_CONFORMANCE_BENCH ?? '1') !== '0';
const BENCH_SAMPLES = Number(process.env.BERTH_CONFORMANCE_BENCH_SAMPLES ?? '10');
const FOCUS = process.env.BERTH_CONFORMANCE_FOCUS;
/** critest's own limit per runtime: a hung spec must not hold CI for an hour. */
const SUITE_TIMEOUT = process.env.BERTH_CONFORMANCE_SUITE_TIMEOUT ?? '8m';

const log = (line: string): void => console.log(`conformance: ${line}`);

/** What the shell's trap sweeps if this process is killed before its own cleanup. */
function leftover(line: string): void {
  appendFileSync(join(RUN_DIR, 'leftovers'), `${line}\n`);
}

async function main(): Promise<number> {
  const scope = new Scope();
  let closing: Promise<void> | undefined;
  let stopping = false;
  const close = (): Promise<void> => (closing ??= scope.close());
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      log(`${signal}: cleaning up`);
      stopping = true;
      void close().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
    });
  }
  // The helpers make their temp dirs (runtime roots, configs, registry storage, CNI
  // state) under TMPDIR: all of it below the run dir, where the trap can find it.
  const work = join(RUN_DIR, 'work');
  mkdirSync(work, { recursive: true });
  process.env.TMPDIR = work;

  const outcomes: RunOutcome[] = [];
  try {
    const started = Date.now();
    const registry = await startRegistry(scope);
    const images = conformanceImages({ busyboxDir: args.busybox!, standinsDir: args.standins!, catatonit: '/usr/bin/catatonit' });
    const pushed = await pushConformanceImages(registry, images);
    writeFileSync(join(RUN_DIR, 'images.txt'), `${pushed.join('\n')}\n`);
    log(`registry ${registry.url}: ${pushed.length} references pushed (${images.length} images) in ${((Date.now() - started) / 1000).toFixed(1)} s`);

    const network = await startPodNetwork(scope);
    leftover(`iptables ${network.subnet}`);
    leftover(`link ${network.bridge}`);
    log(`pod network ${network.subnet} on bridge ${network.bridge} (FORWARD guard: nothing from it leaves the subnet)`);

    for (const runtime of RUNTIMES) {
      if (stopping) throw new Error('stopped by a signal');
      const runScope = new Scope();
      // A signal closes the outer scope: the runtime (and its pods) go first.
      scope.after(() => runScope.close());
      try {
        let endpoint: string;
        let logs: () => string;
        if (runtime === 'berth') {
          const mirrors = UPSTREAM_HOSTS.map((host) => `[registries."${host}"]\nmirrors = ["${registry.url}"]`).join('\n');
          const berthd = await startBerthd(runScope, {
            cniConfDir: network.confDir,
            logLevel: 'info',
            extraToml: `${mirrors}\n[registries."${registry.host}"]\ninsecure = true\n`,
          });
          leftover(`pid ${berthd.process.pid}`);
          endpoint = berthd.endpoint;
          logs = berthd.logs;
          log(`berthd on ${endpoint}`);
        } else {
          const mirrors = UPSTREAM_HOSTS.map(
            (host) => `[plugins."io.containerd.grpc.v1.cri".registry.mirrors."${host}"]\n    endpoint = ["${registry.url}"]`,
          ).join('\n  ');
          const containerd = await startContainerd(runScope, {
            cniConfDir: network.confDir,
            criToml: `sandbox_image = "${CONTAINERD_SANDBOX_IMAGE}"\n  ${mirrors}\n`,
          });
          leftover(`pid ${containerd.process.pid}`);
          // Pods first, while containerd still runs: their shims and network namespaces
          // (in /run/netns) would outlive it otherwise.
          runScope.after(() => removeAllPods(containerd.endpoint).catch(() => undefined));
          endpoint = containerd.endpoint;
          logs = containerd.logs;
          log(`containerd ${await containerdVersion()} on ${endpoint}`);
        }
        const outcome = await runCritest(runtime, endpoint);
        if (BENCH && !stopping) outcome.bench = await runBenchmark(runtime, endpoint);
        outcomes.push(outcome);
        writeFileSync(join(RUN_DIR, `${runtime}.log`), logs());
      } finally {
        await runScope.close();
      }
    }
  } catch (err) {
    console.error(`conformance: the harness failed: ${(err as Error).stack ?? err}`);
    await close();
    return 2;
  }
  await close();
  return summarize(outcomes);
}

/** critest's validation suite against one runtime; its JSON report parsed. */
async function runCritest(runtime: Runtime, endpoint: string): Promise<RunOutcome> {
  const report = join(RUN_DIR, `${runtime}-report.json`);
  const skips = SKIPS.filter((s) => s.runtimes.includes(runtime));
  const critestArgs = [
    `-runtime-endpoint=${endpoint}`,
    `-image-endpoint=${endpoint}`,
    `-ginkgo.json-report=${report}`,
    `-ginkgo.timeout=${SUITE_TIMEOUT}`,
    '-ginkgo.no-color',
    '-ginkgo.v',
    ...skips.map((s) => `-ginkgo.skip=${skipPattern(s)}`),
    ...(FOCUS ? [`-ginkgo.focus=${FOCUS}`] : []),
  ];
  log(`critest against ${runtime} (${skips.length} named skips; output in ${runtime}-critest.log)`);
  const started = Date.now();
  const code = await runLogged(CRITEST, critestArgs, join(RUN_DIR, `${runtime}-critest.log`), runtime);
  const seconds = (Date.now() - started) / 1000;
  if (!existsSync(report)) return { runtime, specs: new Map(), seconds, error: `critest exited ${code} without a report` };
  const specs = parseReport(report);
  const counts = countStates(specs);
  log(`critest against ${runtime}: exit ${code} in ${seconds.toFixed(0)} s: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped`);
  return { runtime, specs, seconds };
}

/** Runs a program with its output in a file (and the critest run dir as TMPDIR). */
function runLogged(command: string, argv: string[], logFile: string, runtime: Runtime): Promise<number | null> {
  // The mount propagation specs make and bind-mount directories in TMPDIR.
  const tmp = join(RUN_DIR, 'work', `critest-${runtime}-tmp`);
  mkdirSync(tmp, { recursive: true });
  return new Promise((resolve, reject) => {
    const out = createWriteStream(logFile);
    const child = spawn(command, argv, { cwd: tmp, env: { PATH: process.env.PATH, HOME: process.env.HOME, TMPDIR: tmp }, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.pipe(out, { end: false });
    child.stderr.pipe(out, { end: false });
    child.on('error', reject);
    child.on('close', (code) => out.end(() => resolve(code)));
    // If this runner is told to stop, critest stops with it.
    const stop = (): void => void child.kill('SIGTERM');
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    child.on('close', () => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
    });
  });
}

interface GinkgoSpecReport {
  ContainerHierarchyTexts: string[] | null;
  LeafNodeText: string;
  LeafNodeType: string;
  State: string;
  RunTime: number;
  Failure?: { Message?: string; Location?: { FileName?: string; LineNumber?: number } };
}

function parseReport(file: string): Map<string, SpecResult> {
  const suites = JSON.parse(readFileSync(file, 'utf8')) as Array<{ SpecReports: GinkgoSpecReport[] | null }>;
  const specs = new Map<string, SpecResult>();
  for (const suite of suites) {
    for (const r of suite.SpecReports ?? []) {
      if (r.LeafNodeType !== 'It') continue;
      const name = [...(r.ContainerHierarchyTexts ?? []), r.LeafNodeText].join(' ');
      const failure = r.Failure?.Message ? failureExcerpt(r.Failure.Message) : undefined;
      specs.set(name, { name, state: r.State, seconds: r.RunTime / 1e9, failure });
    }
  }
  return specs;
}

/** The gist of a ginkgo failure: its first line, and the gRPC status when there is one. */
function failureExcerpt(message: string): string {
  const first = message.split('\n')[0]!.trim();
  const rpc = /rpc error: code = \w+ desc = [^\n]*/.exec(message)?.[0];
  return (rpc ? `${first}: ${rpc}` : message.split('\n').slice(0, 3).join(' ')).replace(/\s+/g, ' ').slice(0, 400);
}

function countStates(specs: Map<string, SpecResult>): { passed: number; failed: number; skipped: number } {
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  for (const s of specs.values()) {
    if (s.state === 'passed') passed++;
    else if (s.state === 'skipped' || s.state === 'pending') skipped++;
    else failed++; // failed, panicked, interrupted, timedout, aborted
  }
  return { passed, failed, skipped };
}

/** `critest -benchmark` with a small sample count; medians (ms) per operation. */
async function runBenchmark(runtime: Runtime, endpoint: string): Promise<Map<string, number>> {
  const dir = join(RUN_DIR, `${runtime}-bench`);
  const params = writeBenchParams(dir, BENCH_SAMPLES);
  log(`critest -benchmark against ${runtime} (${BENCH_SAMPLES} samples each)`);
  const started = Date.now();
  const code = await runLogged(CRITEST, benchArgs(endpoint, params, dir), join(RUN_DIR, `${runtime}-bench.log`), runtime);
  const medians = readBenchMedians(dir);
  log(`critest -benchmark against ${runtime}: exit ${code} in ${((Date.now() - started) / 1000).toFixed(0)} s, ${medians.size} operations measured`);
  return medians;
}

const SHORT: Record<string, string> = { passed: 'pass', failed: 'FAIL', skipped: 'skip', pending: 'pend', panicked: 'PANIC', interrupted: 'INTR', timedout: 'TIME', aborted: 'ABRT' };

function summarize(outcomes: RunOutcome[]): number {
  const out: string[] = [];
  const berth = outcomes.find((o) => o.runtime === 'berth');
  const containerd = outcomes.find((o) => o.runtime === 'containerd');
  out.push('', '=== critest v1.37.0 conformance ===', '');
  out.push(`${'runtime'.padEnd(12)} ${'passed'.padStart(6)} ${'failed'.padStart(6)} ${'skipped'.padStart(7)} ${'time'.padStart(6)}`);
  for (const o of outcomes) {
    const c = countStates(o.specs);
    out.push(`${o.runtime.padEnd(12)} ${String(c.passed).padStart(6)} ${String(c.failed).padStart(6)} ${String(c.skipped).padStart(7)} ${`${o.seconds.toFixed(0)}s`.padStart(6)}${o.error ? `  (${o.error})` : ''}`);
  }

  out.push('', 'Named skips (passed to critest as -ginkgo.skip):');
  for (const s of SKIPS) {
    const onContainerd = containerd && !s.runtimes.includes('containerd') ? [...containerd.specs.values()].find((r) => r.name.includes(s.spec))?.state : undefined;
    out.push(`  [${s.runtimes.join(', ')}] ${s.spec}${onContainerd ? ` (containerd: ${onContainerd})` : ''}`);
    out.push(`      reason: ${s.reason}`);
  }

  let status = 0;
  if (outcomes.some((o) => o.error)) status = 2;
  // Specs berth passed before (the committed baseline) must pass again, whatever
  // containerd does with them: a spec containerd 1.6 skips is guarded too.
  if (berth && !berth.error) {
    const baseline = readBerthBaseline();
    // With a focus, critest skips what is out of it; a full run must pass the whole baseline.
    const lost = baseline.filter((name) => {
      const state = berth.specs.get(name)?.state;
      return state !== undefined && state !== 'passed' && !(FOCUS && state === 'skipped');
    });
    const missing = FOCUS ? [] : baseline.filter((name) => !berth.specs.has(name));
    const gained = [...berth.specs.values()].filter((r) => r.state === 'passed' && !baseline.includes(r.name)).map((r) => r.name);
    out.push('', `Baseline: ${baseline.length} specs berth passed before (${BERTH_BASELINE_FILE}); ${lost.length} of them fail now, ${missing.length} did not run.`);
    for (const name of [...lost, ...missing]) out.push(`  LOST  ${name}${berth.specs.get(name)?.failure ? `\n        ${berth.specs.get(name)!.failure}` : ''}`);
    if (gained.length) out.push(`  Passing now and not in the baseline (${gained.length}; add them): `, ...gained.map((n) => `    ${n}`));
    if (lost.length || missing.length) status = Math.max(status, 1);
  }
  if (berth && containerd && !berth.error && !containerd.error) {
    const regressions: SpecResult[] = [];
    const bothFail: string[] = [];
    const berthOnly: string[] = [];
    for (const ref of containerd.specs.values()) {
      const mine = berth.specs.get(ref.name);
      const state = mine?.state ?? 'missing';
      if (ref.state === 'passed' && state !== 'passed' && !skipFor(ref.name, 'berth')) regressions.push(mine ?? { name: ref.name, state, seconds: 0 });
      if (ref.state !== 'passed' && ref.state !== 'skipped' && state !== 'passed' && state !== 'skipped') bothFail.push(ref.name);
      if (ref.state !== 'passed' && state === 'passed') berthOnly.push(`${ref.name} (containerd: ${ref.state})`);
    }
    out.push('', `Specs that pass on containerd and fail on berth (${regressions.length}):`);
    for (const r of regressions) {
      out.push(`  ${SHORT[r.state] ?? r.state}  ${r.name}`);
      if (r.failure) out.push(`        ${r.failure}`);
    }
    if (bothFail.length) out.push('', `Failing on both (not counted against berth) (${bothFail.length}):`, ...bothFail.map((n) => `  ${n}`));
    if (berthOnly.length) out.push('', `Passing on berth only (${berthOnly.length}):`, ...berthOnly.map((n) => `  ${n}`));
    if (regressions.length > 0) status = Math.max(status, 1);
    out.push('', regressions.length === 0 ? 'RESULT: berth passes every spec containerd passes (minus the named skips).' : `RESULT: ${regressions.length} spec(s) pass on containerd and fail on berth.`);
  } else if (outcomes.length === 1 && outcomes[0]) {
    const o = outcomes[0];
    const failed = [...o.specs.values()].filter((s) => !['passed', 'skipped', 'pending'].includes(s.state));
    out.push('', `Failed on ${o.runtime} (${failed.length}):`, ...failed.map((s) => `  ${SHORT[s.state] ?? s.state}  ${s.name}${s.failure ? `\n        ${s.failure}` : ''}`));
    out.push('', 'RESULT: only one runtime ran; nothing to compare against.');
  }

  if (berth?.bench && containerd?.bench) {
    out.push('', `Benchmarks (median ms, ${BENCH_SAMPLES} samples; ratio = berth / containerd):`);
    const ops = [...new Set([...berth.bench.keys(), ...containerd.bench.keys()])].sort();
    for (const op of ops) {
      const b = berth.bench.get(op);
      const c = containerd.bench.get(op);
      const ratio = b !== undefined && c !== undefined && c > 0 ? `${(b / c).toFixed(2)}x` : 'n/a';
      out.push(`  ${op.padEnd(44)} berth ${b === undefined ? '   n/a' : b.toFixed(1).padStart(8)}  containerd ${c === undefined ? '   n/a' : c.toFixed(1).padStart(8)}  ${ratio}`);
    }
  }
  const text = out.join('\n');
  console.log(text);
  writeFileSync(join(RUN_DIR, 'summary.txt'), `${text}\n`);
  return status;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(2);
  },
);
