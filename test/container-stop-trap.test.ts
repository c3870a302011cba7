// StopContainer's signal reaches a container's own handler: a shell that traps SIGTERM
// (the kubelet's graceful stop of a pod) runs its trap and exits by itself within the
// timeout, whether it is its PID namespace's init (the kubelet's default, CONTAINER) or not (POD).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NamespaceMode } from '../src/gen/runtime/v1/api_pb.js';
import { containerTestSkip as skip, setupContainerTest, waitExited } from './helpers/containers.js';
import { setTimeout as sleep } from 'node:timers/promises';

test('a shell that traps SIGTERM runs its trap on StopContainer', { skip }, async (t) => {
  const { runtime, image, logDir } = await setupContainerTest(t);
  for (const [name, pid] of [['own', NamespaceMode.CONTAINER], ['shared', NamespaceMode.POD]] as const) {
    const podId = (await runtime.runPodSandbox({ config: { metadata: { name: `trap-${name}`, namespace: 'test', uid: `trap-${name}-uid`, attempt: 0 }, logDirectory: logDir, linux: { securityContext: { namespaceOptions: { pid } } } } })).podSandboxId;
    t.after(() => runtime.removePodSandbox({ podSandboxId: podId }).catch(() => undefined));
    const { containerId } = await runtime.createContainer({
      podSandboxId: podId,
      config: {
        metadata: { name: 'trap', attempt: 0 },
        image: { image },
        command: ['sh', '-c', "trap 'echo got TERM; exit 7' TERM; echo ready; while true; do sleep 1; done"],
        logPath: `trap-${name}.log`,
        linux: { securityContext: { namespaceOptions: { pid } } },
      },
      sandboxConfig: { metadata: { name: `trap-${name}`, namespace: 'test', uid: `trap-${name}-uid`, attempt: 0 }, logDirectory: logDir },
    });
    await runtime.startContainer({ containerId });
    await sleep(500);
    const sig = await runtime.execSync({ containerId, cmd: ['sh', '-c', 'grep -E "^Sig(Ign|Blk|Cgt)" /proc/$(pgrep -o sh || echo 1)/status; cat /proc/1/cmdline | tr "\\0" " "'], timeout: 5n });
    const started = Date.now();
    await runtime.stopContainer({ containerId, timeout: 10n });
    const status = await waitExited(runtime, containerId);
    assert.equal(status.exitCode, 7, `${name}: the trap's exit code (took ${Date.now() - started} ms; ${Buffer.from(sig.stdout).toString().trim().replace(/\n/g, ' / ')})`);
    assert.ok(Date.now() - started < 5000, `${name}: stopped by the trap, not the timeout's SIGKILL`);
  }
});
