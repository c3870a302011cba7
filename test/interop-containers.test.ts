// Interop oracle for containers: the same pod and container config files, driven through
// berthctl only, against Debian's containerd 1.6 CRI and against berthd (both on runc and
// the same test CNI network) must give the same logs, states, exit codes, exec results,
// listings and errors. Everything is observed first; the comparisons are subtests, so a
// difference names itself without hiding the others.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CONTAINERD, startContainerd, pushPauseImage, registryCriToml } from './helpers/containerd.js';
import { runBerthctl, startBerthd } from './helpers/berthd.js';
import { containerTestSkip } from './helpers/containers.js';
import { buildLayer, busyboxEntries, pushImage } from './helpers/image-builder.js';
import { startRegistry } from './helpers/registry.js';
import { startPodNetwork } from './helpers/pod-network.js';
import { tempDir } from './helpers/tmp.js';

const skip =
  containerTestSkip ||
  (!existsSync(CONTAINERD) ? 'containerd is not installed' : false) ||
  (!existsSync('/usr/bin/catatonit') ? 'catatonit is not installed (containerd\'s pause image)' : false);

const DAEMONS = ['containerd', 'berthd'] as const;
type Daemon = (typeof DAEMONS)[number];

/** What `berthctl inspect` prints under "status" (the JSON form of ContainerStatus). */
interface StatusJson {
  id: string;
  state: string;
  createdAt: string;
  startedAt: string;
  finishedAt: string;
  exitCode: number;
  reason: string;
  message: string;
  imageRef: string;
  imageId?: string;
  logPath: string;
  [key: string]: unknown;
}

interface ContainerJson {
  id: string;
  podSandboxId: string;
  metadata: { name: string; attempt: number };
  image: { image: string };
  imageRef: string;
  state: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

interface Output {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A failed call as berthctl words it, ids replaced by their container's name. */
interface CallFailure {
  code: number | null;
  action: string;
  grpcCode: string;
}

interface Observed {
  /** The talker's status right after create, and once it exited (ids and times left out). */
  talkerCreated: Record<string, unknown>;
  talkerExited: Record<string, unknown>;
  talkerLogs: Output;
  /** `id` (its groups= is getgroups()) of a container run as uid 1000, and of `exec` as the image's root. */
  groups: { runAsUser1000: string; execAsRoot: string };
  running: string[];
  runningInPod: string[];
  psJson: Array<Record<string, unknown>>;
  psByName: string[];
  execExit4: Output;
  execEnv: Output;
  sleeperStopped: Record<string, unknown>;
  stubbornStopped: Record<string, unknown>;
  trapperStopped: Record<string, unknown>;
  trapperLogs: Output;
  runningAfterStop: string;
  rmOutput: string;
  inspectRemoved: CallFailure;
  rmRemoved: CallFailure;
  logsRemoved: CallFailure;
  stubbornStopMs: number;
  podRemoval: string[];
  leftAfter: { containers: string; pods: string };
}

test('the same container configs through berthctl against containerd and berthd', { skip }, async (t) => {
  // containerd's CRI needs a pause image: Debian's static catatonit, served locally.
  const registry = await startRegistry(t);
  const pauseImage = await pushPauseImage(registry);
  const busybox = await pushImage(registry, 'interop/busybox', '1', {
    layers: [buildLayer(busyboxEntries())],
    config: { Env: ['PATH=/bin', 'FROM_IMAGE=yes'], WorkingDir: '/tmp' },
  });
  const image = `${registry.host}/interop/busybox:1`;
  const net = await startPodNetwork(t);
  const containerd = await startContainerd(t, {
    cniConfDir: net.confDir,
    criToml: registryCriToml(registry, pauseImage),
  });
  const berthd = await startBerthd(t, { cniConfDir: net.confDir });
  const endpoints: Record<Daemon, string> = { containerd: containerd.endpoint, berthd: berthd.endpoint };
  const daemonLogs: Record<Daemon, () => string> = { containerd: containerd.logs, berthd: berthd.logs };

  // One set of container configs for both daemons, written as crictl's users write them.
  const dir = await tempDir(t);
  const containerFile = async (name: string, config: object) => {
    const path = join(dir, `${name}.json`);
    await writeFile(path, JSON.stringify({ metadata: { name }, image: { image }, log_path: `${name}.log`, ...config }, null, 2));
    return path;
  };
  const files = {
    talker: await containerFile('talker', {
      command: ['sh', '-c', 'echo "$GREETING|$FROM_IMAGE"; pwd; id -u; echo oops >&2; exit 3'],
      envs: [{ key: 'GREETING', value: 'hi there' }],
      labels: { role: 'talker' },
      annotations: { 'interop/note': 'talks' },
      linux: { security_context: { run_as_user: { value: 1000 } } },
    }),
    grouper: await containerFile('grouper', { command: ['id'], linux: { security_context: { run_as_user: { value: 1000 } } } }),
    sleeper: await containerFile('sleeper', { command: ['sleep', '600'], labels: { role: 'sleeper' } }),
    trapper: await containerFile('trapper', { command: ['sh', '-c', 'trap "echo bye; exit 0" TERM; echo ready; while true; do sleep 0.1; done'] }),
    stubborn: await containerFile('stubborn', { command: ['sh', '-c', 'trap "" TERM; echo ready; while true; do sleep 0.1; done'] }),
  };

  const observed = {} as Record<Daemon, Observed>;
  for (const daemon of DAEMONS) {
    const ctl = (args: string[]) => runBerthctl(['-r', endpoints[daemon], '--timeout', '60s', ...args]);
    const ok = async (args: string[]) => {
      const result = await ctl(args);
      assert.equal(result.code, 0, `${daemon}: berthctl ${args.join(' ')}: ${result.stderr}\n${daemonLogs[daemon]().slice(-3000)}`);
      return result.stdout;
    };
    // Each daemon's pods have their own names, uids and log directories.
    const podFile = async (name: string) => {
      const path = join(dir, `${name}-${daemon}.json`);
      const logDirectory = await tempDir(t, `logs-${daemon}-`);
      const config = { metadata: { name: `${name}-${daemon}`, namespace: 'interop', uid: `${name}-${daemon}-uid`, attempt: 0 }, hostname: name, log_directory: logDirectory, labels: { app: 'interop' } };
      await writeFile(path, JSON.stringify(config, null, 2));
      return { path, logDirectory };
    };
    const pod = await podFile('ctrs');
    const sleeperPod = await podFile('sleeper');
    const pods: string[] = [];
    try {
      assert.equal(await ok(['pull', image]), `Image is up to date for ${busybox.configDigest}\n`, daemon);
      const podId = (await ok(['runp', pod.path])).trim();
      pods.push(podId);
      const names = new Map<string, string>();
      const named = (ids: string) => ids.split('\n').filter(Boolean).map((id) => names.get(id) ?? `unknown ${id}`);
      const inspect = async (id: string) => (JSON.parse(await ok(['inspect', id])) as { status: StatusJson }).status;
      const waitFor = async (id: string, until: (s: StatusJson) => boolean) => {
        for (let i = 0; i < 100; i++) {
          const status = await inspect(id);
          if (until(status)) return status;
          await sleep(200);
        }
        throw new Error(`${daemon}: container ${names.get(id)} never reached the expected state`);
      };
      const logs = async (id: string): Promise<Output> => {
        const r = await ctl(['logs', id]);
        return { code: r.code, stdout: r.stdout, stderr: r.stderr };
      };
      const waitForLog = async (id: string, text: string) => {
        for (let i = 0; i < 100 && !(await logs(id)).stdout.includes(text); i++) await sleep(100);
      };
      const comparable = (status: StatusJson, logDirectory: string) => {
        // Ids and times differ by nature. imageId is left out: containerd 1.6 predates
        // the field. imageRef is the image's repo digest on both (the pod's imageID).
        const { id, createdAt, startedAt, finishedAt, imageId, logPath, ...rest } = status;
        assert.equal(names.has(id), true, `${daemon}: inspect answers the container's own id`);
        // berthctl prints crictl's RFC 3339 times (nanoseconds kept); Go's zero time for
        // a start or finish that has not happened.
        const zero = '0001-01-01T00:00:00Z';
        const ns = (time: string) => {
          const m = /^(.*?)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(time);
          assert.ok(m, `${daemon}: an RFC 3339 time: ${time}`);
          return BigInt(Date.parse(`${m[1]}${m[3]}`)) * 1_000_000n + BigInt((m[2] ?? '').padEnd(9, '0'));
        };
        assert.ok(ns(createdAt) > 0n, `${daemon}: createdAt`);
        if (startedAt !== zero) assert.ok(ns(createdAt) <= ns(startedAt), `${daemon}: createdAt ${createdAt} <= startedAt ${startedAt}`);
        // containerd takes startedAt after the task started, so a process that exits at
        // once can finish "before" it started by a fraction of a millisecond there.
        const slackNs = daemon === 'containerd' ? 5_000_000n : 0n;
        if (finishedAt !== zero) assert.ok(ns(startedAt) <= ns(finishedAt) + slackNs, `${daemon}: startedAt ${startedAt} <= finishedAt ${finishedAt}`);
        return { ...rest, logPath: logPath.replace(logDirectory, '<log_directory>'), started: startedAt !== zero, finished: finishedAt !== zero };
      };
      const failure = (result: Output): CallFailure => {
        let stderr = result.stderr;
        for (const [id, name] of names) stderr = stderr.replaceAll(id, `<${name}>`);
        const match = /^berthctl: (.*?): rpc error: code = (\w+) desc = /.exec(stderr);
        return { code: result.code, action: match?.[1] ?? `unparsed: ${stderr}`, grpcCode: match?.[2] ?? '' };
      };
      const create = async (name: keyof typeof files) => {
        const id = (await ok(['create', podId, files[name], pod.path])).trim();
        assert.match(id, /^[0-9a-f]{64}$/, `${daemon}: create prints the id`);
        names.set(id, name);
        return id;
      };
      const start = async (id: string) => assert.equal(await ok(['start', id]), `${id}\n`, `${daemon}: start prints the id`);

      // A container that talks, as uid 1000, then fails with 3.
      const talker = await create('talker');
      const talkerCreated = comparable(await inspect(talker), pod.logDirectory);
      await start(talker);
      const talkerExited = comparable(await waitFor(talker, (s) => s.state === 'CONTAINER_EXITED'), pod.logDirectory);
      const talkerLogs = await logs(talker);

      const grouper = await create('grouper');
      await start(grouper);
      await waitFor(grouper, (s) => s.state === 'CONTAINER_EXITED');
      const grouperLogs = await logs(grouper);

      // A long-running container through `run` (its own pod), two more in the first pod.
      const sleeper = (await ok(['run', files.sleeper, sleeperPod.path])).trim();
      names.set(sleeper, 'sleeper');
      const sleeperPodId = (JSON.parse(await ok(['ps', '-a', '-o', 'json', '--name', '^sleeper$'])) as { containers: ContainerJson[] }).containers[0]?.podSandboxId;
      assert.ok(sleeperPodId && sleeperPodId !== podId, `${daemon}: run made a pod of its own`);
      pods.push(sleeperPodId);
      const trapper = await create('trapper');
      const stubborn = await create('stubborn');
      await start(trapper);
      await start(stubborn);
      await waitForLog(trapper, 'ready');
      await waitForLog(stubborn, 'ready');

      const running = named(await ok(['ps', '-q'])).sort();
      const runningInPod = named(await ok(['ps', '-q', '-p', podId])).sort();
      const psJson = (JSON.parse(await ok(['ps', '-a', '-o', 'json'])) as { containers: ContainerJson[] }).containers
        .map((c) => ({
          name: c.metadata.name,
          nameOfId: names.get(c.id),
          attempt: c.metadata.attempt,
          pod: c.podSandboxId === podId ? 'ctrs' : c.podSandboxId === sleeperPodId ? 'sleeper' : c.podSandboxId,
          state: c.state,
          image: c.image.image,
          imageRef: c.imageRef,
          labels: c.labels,
          annotations: c.annotations,
        }))
        .sort((a, b) => a.name.localeCompare(b.name));
      const psByName = named(await ok(['ps', '-a', '-q', '--name', 'talk']));

      const exec = async (args: string[]): Promise<Output> => {
        const r = await ctl(['exec', '--sync', sleeper, ...args]);
        return { code: r.code, stdout: r.stdout, stderr: r.stderr };
      };
      const execExit4 = await exec(['sh', '-c', 'echo hi; echo err >&2; exit 4']);
      const execEnv = await exec(['sh', '-c', 'echo "$FROM_IMAGE"; pwd']);
      const execGroups = await exec(['id']);

      const stopped = async (id: string, timeout: number) => {
        const began = Date.now();
        assert.equal(await ok(['stop', '--timeout', String(timeout), id]), `${id}\n`, `${daemon}: stop prints the id`);
        const ms = Date.now() - began;
        const status = await inspect(id);
        return { ms, status: { state: status.state, exitCode: status.exitCode, reason: status.reason, message: status.message } };
      };
      const sleeperStopped = (await stopped(sleeper, 1)).status;
      const stubbornStop = await stopped(stubborn, 1);
      const trapperStopped = (await stopped(trapper, 10)).status;
      const trapperLogs = await logs(trapper);
      const runningAfterStop = await ok(['ps', '-q']);

      const rmOutput = (await ok(['rm', talker])).replace(talker, '<talker>');
      const inspectRemoved = failure(await ctl(['inspect', talker]));
      const rmRemoved = failure(await ctl(['rm', talker]));
      const logsRemoved = failure(await ctl(['logs', talker]));

      const podRemoval: string[] = [];
      for (const [id, label] of [[sleeperPodId, 'sleeper'], [podId, 'ctrs']] as const) {
        podRemoval.push((await ok(['stopp', id])).replace(id, `<${label}>`));
        podRemoval.push((await ok(['rmp', id])).replace(id, `<${label}>`));
      }
      const leftAfter = { containers: await ok(['ps', '-a', '-q']), pods: await ok(['pods', '-q']) };

      observed[daemon] = {
        talkerCreated,
        talkerExited,
        talkerLogs,
        groups: { runAsUser1000: grouperLogs.stdout, execAsRoot: execGroups.stdout },
        running,
        runningInPod,
        psJson,
        psByName,
        execExit4,
        execEnv,
        sleeperStopped,
        stubbornStopped: stubbornStop.status,
        trapperStopped,
        trapperLogs,
        runningAfterStop,
        rmOutput,
        inspectRemoved,
        rmRemoved,
        logsRemoved,
        stubbornStopMs: stubbornStop.ms,
        podRemoval,
        leftAfter,
      };
    } finally {
      // Before the daemons are stopped (t.after runs them first): nothing of a failed
      // run may outlive the test, least of all containerd's shims.
      for (const id of pods.reverse()) await ctl(['rmp', '--force', id]);
    }
  }

  const { containerd: c, berthd: b } = observed;

  await t.test('inspect: CREATED, then EXITED with exit code 3 and reason Error, the same fields on both', () => {
    assert.deepEqual(b.talkerCreated, c.talkerCreated);
    assert.deepEqual(b.talkerExited, c.talkerExited);
    for (const daemon of DAEMONS) {
      const { talkerCreated: created, talkerExited: exited } = observed[daemon];
      assert.deepEqual([created.state, created.exitCode, created.started, created.finished], ['CONTAINER_CREATED', 0, false, false], daemon);
      assert.deepEqual([exited.state, exited.exitCode, exited.reason, exited.started, exited.finished], ['CONTAINER_EXITED', 3, 'Error', true, true], daemon);
      assert.equal(exited.logPath, '<log_directory>/talker.log', daemon);
      assert.deepEqual([exited.labels, exited.annotations], [{ role: 'talker' }, { 'interop/note': 'talks' }], daemon);
      assert.deepEqual(exited.metadata, { name: 'talker', attempt: 0 }, daemon);
    }
  });

  await t.test('logs: the same stdout and stderr on both', () => {
    assert.deepEqual(b.talkerLogs, c.talkerLogs);
    for (const daemon of DAEMONS) {
      const { talkerLogs: out } = observed[daemon];
      // Line 1 (the config's env var) has a subtest of its own.
      assert.deepEqual(out.stdout.split('\n').slice(1), ['/tmp', '1000', ''], `${daemon}: the image's WorkingDir and run_as_user`);
      assert.match(out.stdout, /\|yes\n/, `${daemon}: the image's env`);
      assert.deepEqual([out.stderr, out.code], ['oops\n', 0], daemon);
    }
  });

  await t.test('an env var of the container config file reaches the process as written (KeyValue.value is a plain string, as crictl writes it)', () => {
    // The same bytes reach both daemons: berthctl, not the daemon, reads the file.
    for (const daemon of DAEMONS) assert.equal(observed[daemon].talkerLogs.stdout.split('\n')[0], 'hi there|yes', daemon);
  });

  await t.test('ps: the same running containers, JSON listing and name filter on both', () => {
    assert.deepEqual(b.running, c.running);
    assert.deepEqual(b.runningInPod, c.runningInPod);
    assert.deepEqual(b.psJson, c.psJson);
    assert.deepEqual(b.psByName, c.psByName);
    for (const daemon of DAEMONS) {
      const o = observed[daemon];
      assert.deepEqual(o.running, ['sleeper', 'stubborn', 'trapper'], daemon);
      assert.deepEqual(o.runningInPod, ['stubborn', 'trapper'], daemon);
      assert.deepEqual(o.psByName, ['talker'], daemon);
      assert.deepEqual(
        o.psJson.map((p) => [p.name, p.nameOfId, p.pod, p.state, p.image, p.imageRef]),
        [
          ['grouper', 'grouper', 'ctrs', 'CONTAINER_EXITED', image, busybox.configDigest],
          ['sleeper', 'sleeper', 'sleeper', 'CONTAINER_RUNNING', image, busybox.configDigest],
          ['stubborn', 'stubborn', 'ctrs', 'CONTAINER_RUNNING', image, busybox.configDigest],
          ['talker', 'talker', 'ctrs', 'CONTAINER_EXITED', image, busybox.configDigest],
          ['trapper', 'trapper', 'ctrs', 'CONTAINER_RUNNING', image, busybox.configDigest],
        ],
        daemon,
      );
    }
  });

  await t.test('exec --sync: the same output and exit code on both', () => {
    assert.deepEqual(b.execExit4, c.execExit4);
    assert.deepEqual(b.execEnv, c.execEnv);
    for (const daemon of DAEMONS) {
      assert.deepEqual(observed[daemon].execExit4, { code: 4, stdout: 'hi\n', stderr: 'err\n' }, daemon);
      assert.deepEqual(observed[daemon].execEnv, { code: 0, stdout: 'yes\n/tmp\n', stderr: '' }, `${daemon}: exec sees the image's env and WorkingDir`);
    }
  });

  await t.test('groups: the primary gid is among the supplementary groups, as containerd sets them', () => {
    // containerd puts the user's gid first in additionalGids (so do CRI-O and Docker):
    // getgroups() holds it, and busybox's `id` lists it under groups=.
    assert.deepEqual(
      c.groups,
      { runAsUser1000: 'uid=1000(app) gid=1000(app) groups=1000(app),2000(extra)\n', execAsRoot: 'uid=0(root) gid=0(root) groups=0(root)\n' },
      'containerd',
    );
    assert.deepEqual(b.groups, c.groups, 'berthd');
  });

  await t.test('stop: SIGTERM ends sleep with 143, a TERM trap exits 0, an ignored TERM gets SIGKILL (137) after the timeout', () => {
    assert.deepEqual(b.sleeperStopped, c.sleeperStopped);
    assert.deepEqual(b.stubbornStopped, c.stubbornStopped);
    assert.deepEqual(b.trapperStopped, c.trapperStopped);
    assert.deepEqual(b.trapperLogs, c.trapperLogs);
    assert.deepEqual(b.runningAfterStop, c.runningAfterStop);
    for (const daemon of DAEMONS) {
      const o = observed[daemon];
      assert.deepEqual(o.sleeperStopped, { state: 'CONTAINER_EXITED', exitCode: 143, reason: 'Error', message: '' }, daemon);
      assert.deepEqual(o.stubbornStopped, { state: 'CONTAINER_EXITED', exitCode: 137, reason: 'Error', message: '' }, daemon);
      assert.ok(o.stubbornStopMs >= 900 && o.stubbornStopMs < 15_000, `${daemon}: SIGKILL came after the 1 s timeout (${o.stubbornStopMs} ms)`);
      assert.deepEqual(o.trapperStopped, { state: 'CONTAINER_EXITED', exitCode: 0, reason: 'Completed', message: '' }, daemon);
      assert.deepEqual(o.trapperLogs, { code: 0, stdout: 'ready\nbye\n', stderr: '' }, daemon);
      assert.equal(o.runningAfterStop, '', daemon);
    }
  });

  await t.test('rm: the container is gone; inspect, rm and logs fail with NotFound on both', () => {
    assert.deepEqual(b.rmOutput, c.rmOutput);
    assert.deepEqual(b.inspectRemoved, c.inspectRemoved);
    assert.deepEqual(b.rmRemoved, c.rmRemoved);
    assert.deepEqual(b.logsRemoved, c.logsRemoved);
    for (const daemon of DAEMONS) {
      const o = observed[daemon];
      assert.equal(o.rmOutput, '<talker>\n', daemon);
      assert.deepEqual(o.inspectRemoved, { code: 1, action: 'getting the status of the container "<talker>"', grpcCode: 'NotFound' }, daemon);
      assert.deepEqual(o.rmRemoved, { code: 1, action: 'getting the status of the container "<talker>"', grpcCode: 'NotFound' }, daemon);
      assert.deepEqual(o.logsRemoved, { code: 1, action: 'getting the status of the container "<talker>"', grpcCode: 'NotFound' }, daemon);
    }
  });

  await t.test('stopp and rmp take the pods and their containers away on both', () => {
    assert.deepEqual(b.podRemoval, c.podRemoval);
    assert.deepEqual(b.leftAfter, c.leftAfter);
    for (const daemon of DAEMONS) {
      assert.deepEqual(observed[daemon].podRemoval, ['Stopped sandbox <sleeper>\n', 'Removed sandbox <sleeper>\n', 'Stopped sandbox <ctrs>\n', 'Removed sandbox <ctrs>\n'], daemon);
      assert.deepEqual(observed[daemon].leftAfter, { containers: '', pods: '' }, daemon);
    }
  });
});
