// The polled calls' answers (PodSandboxStatus, ContainerStatus, ImageStatus and the
// List* items) encoded once per record and reused until what they say changes: the
// kubelet asks the same about each pod every second, and building the protobuf message
// and encoding it was most of berthd's own work on those calls. Each answer is one
// length-delimited field of its response (the status, or one item of a list), so a
// response is one cached field or the cached fields of its items one after another,
// exactly as protobuf encodes them. Nothing is shared across records; a record that goes
// takes its entry with it (WeakMap).
import { create, toBinary, type DescMessage, type MessageInitShape } from '@bufbuild/protobuf';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';

/**
 * What an answer says, as a list of values compared one by one (`===`) with those it was
 * encoded from: plain fields of the record and the objects (by identity) that the rest
 * comes from. A record's answer is encoded again when any of them differs.
 */
export type AnswerKey = readonly unknown[];

interface Entry {
  key: AnswerKey;
  bytes: Uint8Array;
}

/** One message per record, encoded as field `field` of its response. */
export class EncodedFields<R extends object, S extends DescMessage> {
  readonly #entries = new WeakMap<R, Entry>();

  constructor(
    private readonly schema: S,
    private readonly field: number,
  ) {}

  /** The record's encoded field: cached while `key` stays the same, else made from `message()`. */
  of(record: R, key: AnswerKey, message: () => MessageInitShape<S>): Uint8Array {
    const entry = this.#entries.get(record);
    if (entry && sameKey(entry.key, key)) return entry.bytes;
    const bytes = lengthDelimited(this.field, toBinary(this.schema, create(this.schema, message())));
    this.#entries.set(record, { key, bytes });
    return bytes;
  }
}

/**
 * What an item of a list answer reads that can change, as the functions that read each
 * value: a whole cached list is checked against its items' values on every call without
 * making a key per item.
 */
export type ItemKey<R> = readonly ((record: R) => unknown)[];

/** A list answer: its encoding and the records it lists, in its order. */
export interface ListAnswer<R> {
  bytes: Uint8Array;
  records: readonly R[];
}

/**
 * A whole list answer (the kubelet's unfiltered listings, every second) encoded once and
 * kept while the records listed are the same ones, in the same order, each with the same
 * key values: then an answer is one pass over the records comparing values, with nothing
 * encoded, copied or allocated. Any change (a record added or gone, a state, a spec)
 * builds it again from the records' cached fields. `order` sorts the answer's items (the
 * check compares the records as given, unsorted).
 */
export class EncodedList<R extends object, S extends DescMessage> {
  #given: readonly R[] = [];
  #values: unknown[] = [];
  #answer: ListAnswer<R> | undefined;

  constructor(
    private readonly items: EncodedFields<R, S>,
    private readonly key: ItemKey<R>,
    private readonly message: (record: R) => MessageInitShape<S>,
    private readonly order?: (a: R, b: R) => number,
  ) {}

  /** The answer listing `records`: the one kept while they are unchanged, else made now and kept. */
  of(records: readonly R[]): ListAnswer<R> {
    const cached = this.#answer;
    if (cached && this.#unchanged(records)) return cached;
    const values: unknown[] = [];
    for (const record of records) for (const read of this.key) values.push(read(record));
    this.#given = records.slice();
    this.#values = values;
    this.#answer = this.once(records);
    return this.#answer;
  }

  /** The answer listing `records`, made now from their cached fields and not kept (a filtered listing). */
  once(records: readonly R[]): ListAnswer<R> {
    const listed = this.order ? records.slice().sort(this.order) : records.slice();
    const bytes = joinFields(listed.map((r) => this.items.of(r, this.key.map((read) => read(r)), () => this.message(r))));
    return { bytes, records: listed };
  }

  #unchanged(records: readonly R[]): boolean {
    const given = this.#given;
    if (records.length !== given.length) return false;
    const key = this.key;
    const values = this.#values;
    let at = 0;
    for (let i = 0; i < records.length; i++) {
      const record = records[i]!;
      if (record !== given[i]) return false;
      for (let k = 0; k < key.length; k++) if (key[k]!(record) !== values[at++]) return false;
    }
    return true;
  }
}

/** A response made of these fields, in this order. */
export function joinFields(fields: readonly Uint8Array[]): Uint8Array {
  if (fields.length === 1) return fields[0]!;
  if (fields.length === 0) return EMPTY;
  return Buffer.concat(fields);
}

const EMPTY = new Uint8Array(0);

function lengthDelimited(field: number, bytes: Uint8Array): Uint8Array {
  return new BinaryWriter().tag(field, WireType.LengthDelimited).bytes(bytes).finish();
}

function sameKey(a: AnswerKey, b: AnswerKey): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
