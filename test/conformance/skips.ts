// The specs the conformance harness does not run, each with its reason. Nothing is
// skipped silently: every entry is passed to critest as -ginkgo.skip and printed in the
// summary. `runtimes` says against which runtime the skip applies; a berth-only skip
// still runs on containerd, so the summary shows what berth is missing.

export interface Skip {
  /** The spec's text as critest prints it (a unique part of it, matched literally). */
  spec: string;
  reason: string;
  runtimes: Array<'berth' | 'containerd'>;
}

export const SKIPS: Skip[] = [
  {
    spec: 'public image with digest should be pulled and removed',
    reason:
      'cannot pass offline: it pulls test-image-digest@sha256:9700f9a2…, the hash of the exact manifest bytes upstream pushed (see critest-offline.md)',
    runtimes: ['berth', 'containerd'],
  },
];

/** A ginkgo -skip regular expression matching the spec text literally. */
export function skipPattern(skip: Skip): string {
  return skip.spec.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The skip entry covering a spec's full text for a runtime, if any. */
export function skipFor(specText: string, runtime: 'berth' | 'containerd'): Skip | undefined {
  return SKIPS.find((s) => s.runtimes.includes(runtime) && specText.includes(s.spec));
}
