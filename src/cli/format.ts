// Formatting helpers the berthctl commands share, each as crictl prints it.

/** crictl shows 13 characters of an id, without its "sha256:". */
export function truncateId(id: string): string {
  return id.replace(/^sha256:/, '').slice(0, 13);
}

/** Go's units.HumanDuration, as crictl prints ages. */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  const minutes = Math.floor(seconds / 60);
  const hours = Math.floor(minutes / 60);
  if (seconds < 1) return 'Less than a second';
  if (seconds === 1) return '1 second';
  if (seconds < 60) return `${seconds} seconds`;
  if (minutes === 1) return 'About a minute';
  if (minutes < 60) return `${minutes} minutes`;
  if (hours === 1) return 'About an hour';
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.floor(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.floor(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24 / 30)} months`;
  return `${Math.floor(hours / 24 / 365)} years`;
}

/** The Labels: and Annotations: blocks of crictl's verbose listings. */
export function labelLines(labels: Record<string, string>, annotations: Record<string, string>): string[] {
  const lines: string[] = [];
  if (Object.keys(labels).length > 0) lines.push('Labels:', ...Object.entries(labels).sort().map(([k, v]) => `\t${k} -> ${v}`));
  if (Object.keys(annotations).length > 0) lines.push('Annotations:', ...Object.entries(annotations).sort().map(([k, v]) => `\t${k} -> ${v}`));
  return lines;
}
