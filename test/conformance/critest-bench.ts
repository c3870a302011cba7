// `critest -benchmark`, shared by the conformance run (a short pass) and bench/critest
// (the side-by-side benchmark): its params file, its arguments, and the medians (ms) per
// operation read back from its output files.
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Writes critest's benchmark params (samples per benchmark, one at a time) into dir; its path. */
export function writeBenchParams(dir: string, samples: number, timeoutSeconds = 60): string {
  mkdirSync(dir, { recursive: true });
  const params = join(dir, 'params.yaml');
  writeFileSync(
    params,
    [
      `containersNumber: ${samples}`,
      'containersNumberParallel: 1',
      `podsNumber: ${samples}`,
      'podsNumberParallel: 1',
      `imagesNumber: ${samples}`,
      'imagesNumberParallel: 1',
      `imageBenchmarkTimeoutSeconds: ${timeoutSeconds}`,
      `podContainerStartBenchmarkTimeoutSeconds: ${timeoutSeconds}`,
      '',
    ].join('\n'),
  );
  return params;
}

/** critest's arguments for a benchmark run against endpoint, its output in dir. */
export function benchArgs(endpoint: string, params: string, dir: string, timeout = '5m'): string[] {
  return [
    `-runtime-endpoint=${endpoint}`,
    `-image-endpoint=${endpoint}`,
    '-benchmark',
    `-benchmarking-params-file=${params}`,
    `-benchmarking-output-dir=${dir}`,
    `-ginkgo.json-report=${join(dir, 'report.json')}`,
    `-ginkgo.timeout=${timeout}`,
    '-ginkgo.no-color',
  ];
}

/** "<benchmark>: <operation>" → median ms, from the *_data.json files critest wrote into dir. */
export function readBenchMedians(dir: string): Map<string, number> {
  const medians = new Map<string, number>();
  for (const file of readdirSync(dir).filter((f) => f.endsWith('_data.json')).sort()) {
    const data = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { operationsNames: string[]; datapoints: Array<{ operationsDurationsNs: number[] }> };
    const bench = file.replace(/_benchmark_data\.json$/, '');
    data.operationsNames.forEach((op, i) => {
      const values = data.datapoints.map((d) => d.operationsDurationsNs[i]).filter((v): v is number => typeof v === 'number' && v > 0);
      if (values.length > 0) medians.set(`${bench}: ${op}`, median(values) / 1e6);
    });
  }
  return medians;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
