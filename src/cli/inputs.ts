// What berthctl reads from the user, shared by its commands: config files (JSON or YAML,
// as crictl reads them) and --label selectors.
import { readFile } from 'node:fs/promises';
import { fromJson, type JsonValue, type MessageShape } from '@bufbuild/protobuf';
import { parse as parseYaml } from 'yaml';

/** A config file as crictl reads them: JSON or YAML, proto or JSON field names. */
export async function loadMessageFile<D extends Parameters<typeof fromJson>[0]>(schema: D, path: string, prepare: (doc: unknown) => unknown = (doc) => doc): Promise<MessageShape<D>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${path}: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = /\.json$/i.test(path) ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new Error(`${path} is not valid ${/\.json$/i.test(path) ? 'JSON' : 'YAML'}: ${(err as Error).message}`);
  }
  try {
    return fromJson(schema, prepare(doc) as JsonValue) as MessageShape<D>;
  } catch (err) {
    throw new Error(`${path}: ${(err as Error).message}`);
  }
}

/** --label KEY=VALUE flags as a CRI label selector. */
export function parseLabelSelector(labels: string[]): Record<string, string> {
  return Object.fromEntries(
    labels.map((l) => {
      const eq = l.indexOf('=');
      if (eq <= 0) throw new Error(`--label "${l}" must be KEY=VALUE`);
      return [l.slice(0, eq), l.slice(eq + 1)];
    }),
  );
}

/**
 * No id given and none a filter picks: crictl logs "No IDs provided or nothing found per
 * filter", shows the verb's help and exits 0; berthctl says it in one line, status 0.
 */
export class NothingSelected extends Error {
  constructor(message = 'No IDs provided or nothing found per filter') {
    super(message);
    this.name = 'NothingSelected';
  }
}
