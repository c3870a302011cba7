// Network interface counters inside a network namespace: /proc/net/dev read by a
// `cat` that nsenter puts in the namespace (Node cannot enter one itself).
import { runCommand } from './command.js';

export interface InterfaceCounters {
  name: string;
  rxBytes: number;
  rxPackets: number;
  rxErrors: number;
  rxDropped: number;
  txBytes: number;
  txPackets: number;
  txErrors: number;
  txDropped: number;
}

/** Parses /proc/net/dev (two header lines, then `name: 16 counters`). */
export function parseNetDev(text: string): InterfaceCounters[] {
  const out: InterfaceCounters[] = [];
  for (const line of text.split('\n').slice(2)) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const f = line.slice(colon + 1).trim().split(/\s+/).map(Number);
    if (f.length < 16) continue;
    out.push({ name: line.slice(0, colon).trim(), rxBytes: f[0]!, rxPackets: f[1]!, rxErrors: f[2]!, rxDropped: f[3]!, txBytes: f[8]!, txPackets: f[9]!, txErrors: f[10]!, txDropped: f[11]! });
  }
  return out;
}

/** The counters of every interface but lo in the namespace pinned at `netns`. */
export async function netnsInterfaceCounters(netns: string): Promise<InterfaceCounters[]> {
  const { stdout } = await runCommand('nsenter', [`--net=${netns}`, 'cat', '/proc/net/dev'], 'reading network counters', { timeoutMs: 5000 });
  return parseNetDev(stdout).filter((i) => i.name !== 'lo');
}
