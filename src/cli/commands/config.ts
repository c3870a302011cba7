// berthctl config: crictl's client configuration file (/etc/crictl.yaml or --config /
// CRI_CONFIG_FILE): --get KEY, --set KEY=VALUE[,KEY=VALUE…] (repeatable), --list, or
// KEY VALUE. As crictl, a missing file is created with every key, writing keeps the
// file's comments, order and quoting and adds the keys it lacks, and a key crictl does
// not know is an error.
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Document, isMap, isScalar, parseDocument, Scalar } from 'yaml';
import { CLEAR_SCREEN, formatTable } from '../output.js';

type Kind = 'string' | 'int' | 'bool';
const KEYS: Array<[string, Kind]> = [
  ['runtime-endpoint', 'string'],
  ['image-endpoint', 'string'],
  ['timeout', 'int'],
  ['debug', 'bool'],
  ['pull-image-on-create', 'bool'],
  ['disable-pull-on-run', 'bool'],
  ['max-retries', 'int'],
];
const KIND = new Map(KEYS);

export interface ConfigOptions {
  get?: string;
  set: string[];
  list: boolean;
  /** KEY VALUE without a flag. */
  args: string[];
}

type Values = Map<string, string | number | boolean>;

async function load(path: string): Promise<{ doc: Document; values: Values }> {
  if (!existsSync(path)) await save(path, new Document({}), new Map());
  const doc = parseDocument(await readFile(path, 'utf8'));
  if (doc.errors.length > 0) throw new Error(`load config file: ${doc.errors[0]!.message}`);
  const values: Values = new Map(KEYS.map(([key, kind]) => [key, kind === 'string' ? '' : kind === 'int' ? 0 : false]));
  if (doc.contents !== null && doc.contents !== undefined) {
    if (!isMap(doc.contents)) throw new Error(`load config file: ${path} is not a YAML mapping`);
    for (const pair of doc.contents.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      const kind = KIND.get(key);
      if (!kind) throw new Error(`load config file: Config option '${key}' is not valid`);
      const raw = isScalar(pair.value) ? pair.value.value : pair.value;
      values.set(key, kind === 'string' ? String(raw ?? '') : kind === 'int' ? Number(raw) : raw === true || raw === 'true');
    }
  }
  return { doc, values };
}

/** Every key written, existing nodes keeping their style (as crictl's setConfigOptions). */
async function save(path: string, doc: Document, values: Values): Promise<void> {
  if (!isMap(doc.contents)) doc.contents = doc.createNode({}) as typeof doc.contents;
  const map = doc.contents as unknown as { items: Array<{ key: unknown; value: unknown }> };
  for (const [key, kind] of KEYS) {
    const value = values.get(key) ?? (kind === 'string' ? '' : kind === 'int' ? 0 : false);
    const found = map.items.filter((p) => (isScalar(p.key) ? p.key.value : p.key) === key);
    if (found.length > 0) {
      for (const pair of found) {
        if (isScalar(pair.value)) pair.value.value = value;
        else pair.value = new Scalar(value);
      }
    } else {
      const scalar = new Scalar(value);
      if (value === '') scalar.type = Scalar.QUOTE_DOUBLE;
      doc.set(key, scalar);
    }
  }
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, String(doc), { mode: 0o600 });
}

function setValue(values: Values, key: string, value: string): void {
  const kind = KIND.get(key);
  if (!kind) throw new Error(`no configuration option named ${key}`);
  if (kind === 'int') {
    if (!/^[-+]?\d+$/.test(value)) throw new Error(`parse ${key} value '${value}': strconv.Atoi: parsing "${value}": invalid syntax`);
    values.set(key, Number(value));
  } else if (kind === 'bool') {
    const truthy = ['1', 't', 'T', 'TRUE', 'true', 'True'];
    const falsy = ['0', 'f', 'F', 'FALSE', 'false', 'False'];
    if (!truthy.includes(value) && !falsy.includes(value)) throw new Error(`parse ${key} value '${value}': strconv.ParseBool: parsing "${value}": invalid syntax`);
    values.set(key, truthy.includes(value));
  } else values.set(key, value);
}

/** Runs `config`; returns what to print, or undefined when crictl would show the command's help. */
export async function configCommand(path: string, options: ConfigOptions): Promise<string | undefined> {
  const { doc, values } = await load(path);
  if (options.get !== undefined) {
    if (!KIND.has(options.get)) throw new Error(`no configuration option named ${options.get}`);
    return `${String(values.get(options.get))}\n`;
  }
  if (options.set.length > 0) {
    for (const setting of options.set) {
      for (const option of setting.split(',')) {
        const pair = option.split('=');
        if (pair.length !== 2) throw new Error(`incorrectly specified option: ${setting}`);
        setValue(values, pair[0]!, pair[1]!);
      }
    }
    await save(path, doc, values);
    return '';
  }
  if (options.list) return CLEAR_SCREEN + formatTable(['KEY', 'VALUE'], KEYS.map(([key]) => [key, String(values.get(key))]));
  const [key, value = ''] = options.args;
  if (!key) return undefined;
  try {
    setValue(values, key, value);
  } catch (err) {
    throw new Error(`set "${key}" to "${value}": ${(err as Error).message}`);
  }
  await save(path, doc, values);
  return '';
}
