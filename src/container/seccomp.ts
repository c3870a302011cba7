// berth's RuntimeDefault seccomp profile (what a container gets when its request asks
// for RuntimeDefault, or names nothing and berthd has seccomp_use_default_when_empty),
// and the profile section for a container's choice.
// Everything is allowed except the system calls that let a process leave or reshape its
// sandbox (namespaces, mounts, kernel modules and keyrings, clocks, tracing other
// processes, reboot…): the calls Docker's and containerd's defaults also refuse without
// extra capabilities. They fail with EPERM, as there.
import { readFile } from 'node:fs/promises';
import { invalidArgument } from '../errors.js';

export type SeccompChoice = { type: 'runtime-default' } | { type: 'unconfined' } | { type: 'localhost'; path: string };

const DENIED = [
  'acct', 'add_key', 'bpf', 'clock_adjtime', 'clock_settime', 'create_module', 'delete_module', 'finit_module',
  'fsconfig', 'fsmount', 'fsopen', 'fspick', 'get_kernel_syms', 'get_mempolicy', 'init_module', 'ioperm', 'iopl', 'kcmp',
  'kexec_file_load', 'kexec_load', 'keyctl', 'lookup_dcookie', 'mbind', 'mount', 'mount_setattr', 'move_mount', 'move_pages',
  'name_to_handle_at', 'nfsservctl', 'open_by_handle_at', 'open_tree', 'perf_event_open', 'pivot_root', 'process_vm_readv',
  'process_vm_writev', 'ptrace', 'query_module', 'quotactl', 'reboot', 'request_key', 'set_mempolicy', 'setns',
  'settimeofday', 'stime', 'swapoff', 'swapon', 'sysfs', '_sysctl', 'umount', 'umount2', 'unshare', 'uselib',
  'userfaultfd', 'ustat', 'vm86', 'vm86old',
];

const ARCHES: Record<string, string[]> = {
  x64: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
  arm64: ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'],
};

export function runtimeDefaultProfile(): Record<string, unknown> {
  return {
    defaultAction: 'SCMP_ACT_ALLOW',
    architectures: ARCHES[process.arch] ?? [],
    syscalls: [{ names: DENIED, action: 'SCMP_ACT_ERRNO', errnoRet: 1 }],
  };
}

/** The linux.seccomp section for a container, or undefined for none. */
export async function seccompFor(choice: SeccompChoice, privileged: boolean): Promise<Record<string, unknown> | undefined> {
  if (privileged || choice.type === 'unconfined') return undefined;
  if (choice.type === 'runtime-default') return runtimeDefaultProfile();
  let text: string;
  try {
    text = await readFile(choice.path, 'utf8');
  } catch (err) {
    throw invalidArgument(`seccomp profile ${choice.path}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw invalidArgument(`seccomp profile ${choice.path} is not valid JSON: ${(err as Error).message}`);
  }
}
