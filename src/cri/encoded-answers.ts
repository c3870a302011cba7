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

/** A response made of these fields, in this order. */
export function joinFields(fields: readonly Uint8Array[]): Uint8Array {
  if (fields.length === 1) return fields[0]!;
  return Buffer.concat(fields);
}

function lengthDelimited(field: number, bytes: Uint8Array): Uint8Array {
  return new BinaryWriter().tag(field, WireType.LengthDelimited).bytes(bytes).finish();
}

function sameKey(a: AnswerKey, b: AnswerKey): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
