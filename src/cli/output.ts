// berthctl's output shapes, as crictl prints them: protobuf JSON (camelCase names,
// enum names, int64 as strings, defaults included), YAML of that same JSON, or tables.
import { toJson } from '@bufbuild/protobuf';
import type { DescMessage, JsonValue, MessageShape } from '@bufbuild/protobuf';
import { stringify as stringifyYaml } from 'yaml';

export type OutputFormat = 'json' | 'yaml' | 'table';

export function parseOutputFormat(value: string | undefined, fallback: OutputFormat, allowed: OutputFormat[] = ['json', 'yaml', 'table']): OutputFormat {
  const format = (value ?? fallback) as OutputFormat;
  if (!allowed.includes(format)) throw new Error(`unsupported output format "${value}": use one of ${allowed.join(', ')}`);
  return format;
}

/** A message as crictl's JSON shows it (jsonpb with EmitDefaults). */
export function messageJson<D extends DescMessage>(schema: D, message: MessageShape<D>): JsonValue {
  return toJson(schema, message, { alwaysEmitImplicit: true });
}

export function formatStructured(value: unknown, format: 'json' | 'yaml'): string {
  return format === 'json' ? JSON.stringify(value, null, 2) + '\n' : stringifyYaml(value);
}

/** A table as crictl's tabwriter lays it out: columns at least 20 wide, 3 spaces apart. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(Math.max(widths[i]! + 3, 20))))
      .join('')
      .trimEnd() + '\n';
  return line(header) + rows.map(line).join('');
}

/**
 * crictl's verbose shape: `status` first, then each info entry inlined as JSON (runtimes
 * put JSON in info values) or kept as the plain string when it is not.
 */
export function withInfo(head: Record<string, unknown>, info: Record<string, string>): Record<string, unknown> {
  const doc = { ...head };
  for (const [key, value] of Object.entries(info)) {
    try {
      doc[key] = JSON.parse(value);
    } catch {
      doc[key] = value;
    }
  }
  return doc;
}
