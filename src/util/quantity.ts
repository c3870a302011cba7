// Kubernetes quantities as pod annotations write them ("10M", "1Gi", "500k").
import { invalidArgument } from '../errors.js';

const DECIMAL: Record<string, number> = { k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18 };
const BINARY: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };

/** A bandwidth annotation in bits per second; undefined when unset. */
export function bandwidthAnnotation(value: string | undefined): number | undefined {
  if (value === undefined || value === '') return undefined;
  const match = /^(\d+(?:\.\d+)?)(k|[KMGTPE]i|[MGTPE])?$/.exec(value.trim());
  if (!match) throw invalidArgument(`bandwidth annotation "${value}" is not a quantity like 10M or 1Gi`);
  const suffix = match[2] ?? '';
  const factor = suffix === '' ? 1 : suffix.endsWith('i') ? BINARY[suffix]! : DECIMAL[suffix]!;
  return Math.round(Number(match[1]) * factor);
}

/** The pod's kubernetes.io/ingress-bandwidth and egress-bandwidth annotations, parsed. */
export function podBandwidth(annotations: Record<string, string>): { ingress?: number; egress?: number } {
  const ingress = bandwidthAnnotation(annotations['kubernetes.io/ingress-bandwidth']);
  const egress = bandwidthAnnotation(annotations['kubernetes.io/egress-bandwidth']);
  return { ...(ingress ? { ingress } : {}), ...(egress ? { egress } : {}) };
}
