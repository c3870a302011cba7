// Go-style durations ("2s", "500ms", "1m30s", "5m"), as crictl flags and containerd's
// config write them; a bare number is seconds.
export function parseDuration(text: string): number {
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text) * 1000;
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const part = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let consumed = 0;
  for (const match of text.matchAll(part)) {
    total += Number(match[1]) * units[match[2]!]!;
    consumed += match[0].length;
  }
  if (consumed === 0 || consumed !== text.length) throw new Error(`invalid duration "${text}" (use e.g. 2s, 500ms, 1m)`);
  return total;
}

/** Milliseconds as Go prints a duration: 300000 → "5m0s", 1500 → "1.5s". */
export function formatDuration(ms: number): string {
  if (ms >= 60_000) {
    const minutes = Math.floor(ms / 60_000);
    return `${minutes}m${(ms - minutes * 60_000) / 1000}s`;
  }
  if (ms >= 1000) return `${ms / 1000}s`;
  return `${ms}ms`;
}
