// The CRI translation's request-shape decisions and checks, without root: the pod's
// hostname, the seccomp profile a container gets, and the security-context fields that
// are refused before anything is created.
import { test } from 'node:test';
import { hostname } from 'node:os';
import assert from 'node:assert/strict';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import {
  ContainerConfigSchema,
  NamespaceMode,
  PodSandboxConfigSchema,
  SecurityProfile_ProfileType as ProfileType,
} from '../src/gen/runtime/v1/api_pb.js';
import { BerthError } from '../src/errors.js';
import { HOSTNAME_MAX_BYTES, podHostname, sandboxSpecFrom } from '../src/cri/sandbox-translate.js';
import { containerSpecFrom } from '../src/cri/container-translate.js';

const node = () => 'the-node';
type PodInit = Exclude<MessageInitShape<typeof PodSandboxConfigSchema>, { $typeName: string }>;
type ContainerInit = Exclude<MessageInitShape<typeof ContainerConfigSchema>, { $typeName: string }>;

function pod(extra: PodInit = {}) {
  return create(PodSandboxConfigSchema, { metadata: { name: 'p', namespace: 'ns', uid: 'u', attempt: 0 }, ...extra });
}

function container(extra: ContainerInit = {}) {
  return create(ContainerConfigSchema, { metadata: { name: 'c' }, image: { image: 'busybox' }, ...extra });
}

/** An InvalidArgument whose message matches. */
function invalid(message: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof BerthError, String(err));
    assert.equal(err.code, 'InvalidArgument');
    assert.match(err.message, message);
    return true;
  };
}

test("a pod without a hostname gets the node's, not its metadata name (critest's names are longer than 64 bytes)", () => {
  const longName = 'pod-sandbox-with-a-name-as-long-as-the-ones-critest-makes-' + 'f'.repeat(15);
  assert.ok(Buffer.byteLength(longName) > HOSTNAME_MAX_BYTES);
  const spec = sandboxSpecFrom(pod({ metadata: { name: longName, namespace: 'ns', uid: 'u', attempt: 0 } }), 'runc', { nodeHostname: node });
  assert.equal(spec.hostname, 'the-node');
  assert.equal(sandboxSpecFrom(pod(), 'runc').hostname, hostname(), 'os.hostname() by default');
  assert.equal(sandboxSpecFrom(pod({ hostname: 'web-0' }), 'runc', { nodeHostname: node }).hostname, 'web-0', 'a requested hostname is kept');
});

test("a pod on the node's network has the node's hostname, whatever it asked for", () => {
  const hostNetwork = { securityContext: { namespaceOptions: { network: NamespaceMode.NODE } } };
  assert.equal(sandboxSpecFrom(pod({ linux: hostNetwork }), 'runc', { nodeHostname: node }).hostname, 'the-node');
  assert.equal(sandboxSpecFrom(pod({ hostname: 'asked', linux: hostNetwork }), 'runc', { nodeHostname: node }).hostname, 'the-node');
});

test('a requested hostname longer than 64 bytes is InvalidArgument', () => {
  assert.equal(podHostname('h'.repeat(64), false, node), 'h'.repeat(64));
  assert.throws(() => sandboxSpecFrom(pod({ hostname: 'h'.repeat(65) }), 'runc', { nodeHostname: node }), invalid(/hostname "h{65}" is 65 bytes; a hostname has at most 64/));
  // Bytes, not characters: 33 two-byte characters are 66 bytes.
  assert.throws(() => podHostname('é'.repeat(33), false, node), invalid(/66 bytes/));
  // Refused even where the node's name would be used: the request is malformed.
  assert.throws(() => podHostname('h'.repeat(65), true, node), invalid(/at most 64/));
});

test('a container whose request names no seccomp profile runs unconfined unless berthd is configured otherwise', () => {
  assert.deepEqual(containerSpecFrom(container()).seccomp, { type: 'unconfined' });
  assert.deepEqual(containerSpecFrom(container({ linux: { securityContext: {} } })).seccomp, { type: 'unconfined' });
  assert.deepEqual(containerSpecFrom(container(), { seccompDefaultWhenEmpty: true }).seccomp, { type: 'runtime-default' });
  // Anything the request does name wins over the configuration.
  const unconfined = container({ linux: { securityContext: { seccomp: { profileType: ProfileType.Unconfined } } } });
  assert.deepEqual(containerSpecFrom(unconfined, { seccompDefaultWhenEmpty: true }).seccomp, { type: 'unconfined' });
  const legacyUnconfined = container({ linux: { securityContext: { seccompProfilePath: 'unconfined' } } });
  assert.deepEqual(containerSpecFrom(legacyUnconfined, { seccompDefaultWhenEmpty: true }).seccomp, { type: 'unconfined' });
});

test('seccomp profiles as containerd reads them: the SecurityProfile message, then the legacy path', () => {
  const choose = (securityContext: ContainerInit['linux']) => containerSpecFrom(container({ linux: securityContext })).seccomp;
  assert.deepEqual(choose({ securityContext: { seccomp: { profileType: ProfileType.RuntimeDefault } } }), { type: 'runtime-default' });
  assert.deepEqual(choose({ securityContext: { seccomp: { profileType: ProfileType.Unconfined } } }), { type: 'unconfined' });
  assert.deepEqual(choose({ securityContext: { seccomp: { profileType: ProfileType.Localhost, localhostRef: '/etc/p.json' } } }), { type: 'localhost', path: '/etc/p.json' });
  // The message wins over the legacy field.
  assert.deepEqual(choose({ securityContext: { seccomp: { profileType: ProfileType.Unconfined }, seccompProfilePath: 'runtime/default' } }), { type: 'unconfined' });
  for (const legacy of ['runtime/default', 'docker/default']) assert.deepEqual(choose({ securityContext: { seccompProfilePath: legacy } }), { type: 'runtime-default' }, legacy);
  assert.deepEqual(choose({ securityContext: { seccompProfilePath: 'unconfined' } }), { type: 'unconfined' });
  // "localhost/<full path>", as the CRI spells it: the path keeps its leading slash.
  assert.deepEqual(choose({ securityContext: { seccompProfilePath: 'localhost//var/lib/kubelet/seccomp/p.json' } }), { type: 'localhost', path: '/var/lib/kubelet/seccomp/p.json' });
});

test('malformed seccomp requests are InvalidArgument, for containers and pods alike', () => {
  const cases: Array<[ContainerInit['linux'], RegExp]> = [
    [{ securityContext: { seccompProfilePath: 'bogus' } }, /seccomp_profile_path "bogus" is not valid: use runtime\/default, docker\/default, unconfined or localhost\/<absolute path/],
    [{ securityContext: { seccompProfilePath: 'runtime/defualt' } }, /seccomp_profile_path "runtime\/defualt" is not valid/],
    [{ securityContext: { seccompProfilePath: 'localhost/' } }, /the profile "" must be an absolute path/],
    [{ securityContext: { seccompProfilePath: 'localhost/relative.json' } }, /the profile "relative.json" must be an absolute path/],
    [{ securityContext: { seccomp: { profileType: ProfileType.Localhost, localhostRef: 'relative.json' } } }, /localhost_ref: the profile "relative.json" must be an absolute path/],
    [{ securityContext: { seccomp: { profileType: ProfileType.RuntimeDefault, localhostRef: '/p.json' } } }, /localhost_ref "\/p.json" must only be set when profile_type is Localhost \(it is RuntimeDefault\)/],
    [{ securityContext: { seccomp: { profileType: 7 as ProfileType } } }, /unknown profile_type 7/],
  ];
  for (const [linux, message] of cases) {
    assert.throws(() => containerSpecFrom(container({ linux })), invalid(message), JSON.stringify(linux, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)));
  }
  assert.throws(() => sandboxSpecFrom(pod({ linux: { securityContext: { seccompProfilePath: 'bogus' } } }), 'runc'), invalid(/seccomp_profile_path "bogus" is not valid/));
  assert.throws(
    () => sandboxSpecFrom(pod({ linux: { securityContext: { seccomp: { profileType: ProfileType.Unconfined, localhostRef: '/p.json' } } } }), 'runc'),
    invalid(/must only be set when profile_type is Localhost/),
  );
  for (const ok of ['', 'runtime/default', 'docker/default', 'unconfined', 'localhost//p.json']) {
    sandboxSpecFrom(pod({ linux: { securityContext: { seccompProfilePath: ok } } }), 'runc');
  }
});

test('run_as_group without run_as_user or run_as_username is InvalidArgument, for containers and pods', () => {
  assert.throws(
    () => containerSpecFrom(container({ linux: { securityContext: { runAsGroup: { value: 3000n } } } })),
    invalid(/^user group is specified without user: run_as_group 3000 needs run_as_user or run_as_username$/),
  );
  assert.equal(containerSpecFrom(container({ linux: { securityContext: { runAsGroup: { value: 3000n }, runAsUser: { value: 0n } } } })).runAsGroup, 3000, 'run_as_user 0 is a user');
  assert.equal(containerSpecFrom(container({ linux: { securityContext: { runAsGroup: { value: 3000n }, runAsUsername: 'app' } } })).runAsGroup, 3000);
  assert.throws(() => sandboxSpecFrom(pod({ linux: { securityContext: { runAsGroup: { value: 5n } } } }), 'runc'), invalid(/user group is specified without user/));
  sandboxSpecFrom(pod({ linux: { securityContext: { runAsGroup: { value: 5n }, runAsUser: { value: 5n } } } }), 'runc');
});

test("a pod request's shape is checked by the translation, before anything is made", () => {
  assert.throws(() => sandboxSpecFrom(pod({ metadata: { name: 'p', namespace: 'ns', uid: '' } }), 'runc'), invalid(/needs a name, a namespace and a uid/));
  assert.throws(() => sandboxSpecFrom(pod({ metadata: { name: '', namespace: 'ns', uid: 'u' } }), 'runc'), invalid(/needs a name, a namespace and a uid/));
  for (const network of [NamespaceMode.TARGET, NamespaceMode.CONTAINER]) {
    const linux = { securityContext: { namespaceOptions: { network } } };
    assert.throws(() => sandboxSpecFrom(pod({ linux }), 'runc'), invalid(/network namespace mode (TARGET|CONTAINER) is not valid for a pod/));
  }
});

test('bandwidth annotations are parsed at translation: bits per second, decimal and binary suffixes', () => {
  const spec = sandboxSpecFrom(pod({ annotations: { 'kubernetes.io/ingress-bandwidth': '10M', 'kubernetes.io/egress-bandwidth': '1Ki' } }), 'runc');
  assert.throws(() => sandboxSpecFrom(pod({ annotations: { 'kubernetes.io/egress-bandwidth': '1ki' } }), 'runc'), invalid(/not a quantity/), 'no NaN rate');
  assert.deepEqual(spec.bandwidth, { ingress: 10_000_000, egress: 1024 });
  assert.deepEqual(sandboxSpecFrom(pod(), 'runc').bandwidth, {});
  assert.throws(() => sandboxSpecFrom(pod({ annotations: { 'kubernetes.io/ingress-bandwidth': 'fast' } }), 'runc'), invalid(/bandwidth annotation "fast" is not a quantity/));
});

test('container mounts need absolute paths (checked at translation)', () => {
  assert.throws(() => containerSpecFrom(container({ mounts: [{ containerPath: 'data', hostPath: '/tmp' }] })), invalid(/mount \/tmp:data needs absolute paths/));
  assert.throws(() => containerSpecFrom(container({ mounts: [{ containerPath: '/data', hostPath: 'tmp' }] })), invalid(/mount tmp:\/data needs absolute paths/));
  assert.equal(containerSpecFrom(container({ mounts: [{ containerPath: '/data', hostPath: '/tmp' }] })).mounts.length, 1);
});
