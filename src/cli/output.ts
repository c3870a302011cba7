// berthctl's output shapes, as crictl prints them: protobuf JSON (camelCase names,
// enum names, int64 as strings, defaults included), YAML of that same JSON, or tables.
import { toJson } from '@bufbuild/protobuf';
import type { DescMessage, JsonValue, MessageShape } from '@bufbuild/protobuf';
import { goYaml } from './go-yaml.js';
import { executeGoTemplate } from './go-template.js';

export type OutputFormat = 'json' | 'yaml' | 'table' | 'go-template';

export function parseOutputFormat(value: string | undefined, fallback: OutputFormat, allowed: OutputFormat[] = ['json', 'yaml', 'table']): OutputFormat {
  const format = (value ?? fallback) as OutputFormat;
  if (!allowed.includes(format)) throw new Error(`unsupported output format "${value}": use one of ${allowed.join(', ')}`);
  return format;
}

/** A message as crictl's JSON shows it (jsonpb with EmitDefaults). */
export function messageJson<D extends DescMessage>(schema: D, message: MessageShape<D>): JsonValue {
  return toJson(schema, message, { alwaysEmitImplicit: true });
}

/**
 * A protobuf message's document as crictl prints it (outputProtobufObjAsJSON/YAML): JSON
 * in field order, or YAML with go-yaml's key order; each followed by Println's newline.
 * (protojson puts one or two spaces after a colon, at random per build: not copied.)
 */
export function formatStructured(value: unknown, format: OutputFormat): string {
  if (format !== 'json' && format !== 'yaml') throw new Error(`unsupported output format "${format}"`);
  return format === 'json' ? JSON.stringify(value, null, 2) + '\n' : goYaml(value) + '\n';
}

/**
 * A status message as crictl's marshalMapInOrder leaves it: every field of the message
 * present, those protojson leaves out (unset messages) as null.
 */
export function statusJson<D extends DescMessage>(schema: D, message: MessageShape<D>, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const doc = { ...(messageJson(schema, message) as Record<string, unknown>), ...overrides };
  for (const field of schema.fields) if (!(field.jsonName in doc)) doc[field.jsonName] = null;
  return doc;
}

/**
 * A status document as crictl prints it (outputStatusData): Go's json.Marshal of generic
 * maps, so every key sorted and <, >, & escaped; several documents make one JSON array.
 */
export function formatStatusDocs(docs: unknown[], format: 'json' | 'yaml' | 'go-template', template = ''): string {
  if (docs.length === 0) return '';
  const value = docs.length === 1 ? docs[0] : docs;
  if (format === 'yaml') return goYaml(value) + '\n';
  // crictl: the template over the same document, then Println.
  if (format === 'go-template') {
    try {
      return executeGoTemplate(template, value) + '\n';
    } catch (err) {
      throw new Error(`execute template: ${(err as Error).message}`);
    }
  }
  return goJson(value) + '\n';
}

/** encoding/json's MarshalIndent of a generic value (map keys sorted, HTML characters escaped). */
export function goJson(value: unknown): string {
  return JSON.stringify(sortKeys(value), null, 2).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    entries.sort(([a], [b]) => (Buffer.compare(Buffer.from(a), Buffer.from(b))));
    return Object.fromEntries(entries.map(([k, v]) => [k, sortKeys(v)]));
  }
  return value;
}

/**
 * A table as crictl's tabwriter lays it out (minwidth 20, padding 3): every cell but a
 * line's last is padded to its column's width.
 */
export function formatTable(header: string[] | undefined, rows: string[][]): string {
  const all = header ? [header, ...rows] : rows;
  const width = (s: string) => [...s].length;
  const columns = Math.max(0, ...all.map((r) => r.length - 1));
  const widths = Array.from({ length: columns }, (_, i) => Math.max(20, ...all.filter((r) => i < r.length - 1).map((r) => width(r[i]!) + 3)));
  return all.map((cells) => cells.map((cell, i) => (i === cells.length - 1 ? cell : cell + ' '.repeat(widths[i]! - width(cell)))).join('') + '\n').join('');
}

/**
 * crictl's status shape: `status` and each info entry, a value starting with "{" parsed
 * as JSON, any other kept as a string without its surrounding quotes.
 */
export function withInfo(head: Record<string, unknown>, info: Record<string, string>): Record<string, unknown> {
  const doc = { ...head };
  for (const [key, value] of Object.entries(info)) {
    if (value.startsWith('{')) {
      try {
        doc[key] = JSON.parse(value);
      } catch (err) {
        throw new Error(`unmarshal status info JSON: ${(err as Error).message}`);
      }
    } else doc[key] = value.replace(/^"+|"+$/g, '');
  }
  return doc;
}

/** Go's map[string]string under %v: map[k1:v1 k2:v2], keys sorted. */
export function goMapString(m: Record<string, string>): string {
  return `map[${Object.keys(m).sort().map((k) => `${k}:${m[k]}`).join(' ')}]`;
}

/** Go's time.Unix(0, ns).Format(time.RFC3339Nano), in the local zone; the zero time for undefined. */
export function rfc3339Nano(ns: bigint | undefined): string {
  if (ns === undefined) return '0001-01-01T00:00:00Z';
  const ms = Number(ns / 1_000_000n);
  const offsetMin = -new Date(ms).getTimezoneOffset();
  const local = new Date(ms + offsetMin * 60_000);
  const nanos = ((ns % 1_000_000_000n) + 1_000_000_000n) % 1_000_000_000n;
  const fraction = nanos === 0n ? '' : `.${nanos.toString().padStart(9, '0').replace(/0+$/, '')}`;
  const zone = offsetMin === 0 ? 'Z' : `${offsetMin < 0 ? '-' : '+'}${String(Math.floor(Math.abs(offsetMin) / 60)).padStart(2, '0')}:${String(Math.abs(offsetMin) % 60).padStart(2, '0')}`;
  return `${local.toISOString().slice(0, 19)}${fraction}${zone}`;
}

/** Go's time.Time under %v: "2006-01-02 15:04:05.999999999 -0700 MST". */
export function goTimeString(ns: bigint): string {
  const ms = Number(ns / 1_000_000n);
  const offsetMin = -new Date(ms).getTimezoneOffset();
  const local = new Date(ms + offsetMin * 60_000);
  const nanos = ((ns % 1_000_000_000n) + 1_000_000_000n) % 1_000_000_000n;
  const fraction = nanos === 0n ? '' : `.${nanos.toString().padStart(9, '0').replace(/0+$/, '')}`;
  const sign = offsetMin < 0 ? '-' : '+';
  const zone = `${sign}${String(Math.floor(Math.abs(offsetMin) / 60)).padStart(2, '0')}${String(Math.abs(offsetMin) % 60).padStart(2, '0')}`;
  const name = Intl.DateTimeFormat('en-US', { timeZoneName: 'short' }).formatToParts(new Date(ms)).find((p) => p.type === 'timeZoneName')?.value ?? '';
  return `${local.toISOString().slice(0, 10)} ${local.toISOString().slice(11, 19)}${fraction} ${zone} ${name}`;
}

/** Go's %g with a precision (units.HumanSizeWithPrecision). */
export function goG(value: number, precision: number): string {
  if (value === 0) return '0';
  const exp = Math.floor(Math.log10(Math.abs(Number(value.toPrecision(precision)))));
  if (exp < -4 || exp >= precision) {
    const [mant, e] = value.toExponential(precision - 1).split('e') as [string, string];
    const m = mant.includes('.') ? mant.replace(/0+$/, '').replace(/\.$/, '') : mant;
    const digits = e.replace(/^[-+]/, '');
    return `${m}e${e.startsWith('-') ? '-' : '+'}${digits.padStart(2, '0')}`;
  }
  const fixed = value.toFixed(Math.max(0, precision - 1 - exp));
  return fixed.includes('.') ? fixed.replace(/0+$/, '').replace(/\.$/, '') : fixed;
}

/** go-units HumanSizeWithPrecision: decimal units ("1.05MB" at precision 3). */
export function humanSize(bytes: number, precision = 4): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB', 'ZB', 'YB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${goG(value, precision)}${units[unit]}`;
}

/** crictl's clear-screen before a stats table (it prints it even when not watching). */
export const CLEAR_SCREEN = '\x1b[2J\x1b[H';
