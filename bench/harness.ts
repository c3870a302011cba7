// What benchmarks share: a cleanup scope standing in for node:test's `t` (so the test
// helpers that start berthd, containerd and the registry can be reused), and figures.
export { Scope } from '../test/helpers/scope.js';

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export function requireRoot(): void {
  if (process.getuid?.() !== 0) {
    process.stderr.write('benchmarks start berthd, containerd and a registry: run them as root\n');
    process.exit(1);
  }
}
