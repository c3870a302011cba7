// Image records: one JSON file per image under <root>/images/<id hex>.json, written
// atomically, all held in memory. An image's id is its config digest; its names are
// repo tags (name:tag) and repo digests (name@digest). A tag belongs to one image at a
// time: pulling a tag that moved takes it from the image that had it.
import { join } from 'node:path';
import { RecordStore } from '../store/record-store.js';
import { invalidArgument } from '../errors.js';
import { Mutex } from '../util/locks.js';
import { parseReference, tagReference, repositoryName } from '../util/image-reference.js';

export interface ImageLayer {
  digest: string;
  size: number;
  mediaType: string;
  diffId: string;
  chainId: string;
}

export interface ImageRecord {
  /** The config digest, "sha256:…". */
  id: string;
  repoTags: string[];
  repoDigests: string[];
  /** The platform manifest the layers come from. */
  manifestDigest: string;
  /** The index the reference resolved to, when it was one. */
  indexDigest?: string;
  /** Bytes of all its content: index, manifest, config and compressed layers. */
  size: number;
  layers: ImageLayer[];
  /** The image config's User ("1000", "app", "app:staff"…), empty when unset. */
  user: string;
  annotations: Record<string, string>;
  /** When the record was first written (RFC 3339). */
  createdAt: string;
}

export class ImageStore {
  readonly #records: RecordStore<ImageRecord>;
  readonly #images = new Map<string, ImageRecord>();
  readonly #mutex = new Mutex();
  /** Every repo tag and repo digest → its image; made again after any change (undefined: stale). */
  #byName: Map<string, ImageRecord> | undefined;
  /** What a name the kubelet asks by means as a tag or digest reference (parsed once per name). */
  readonly #wanted = new Map<string, string | null>();

  constructor(root: string) {
    this.#records = new RecordStore(join(root, 'images'));
  }

  /** Loads every record; unreadable ones are reported and skipped, never fatal. */
  async load(): Promise<string[]> {
    const { records, problems } = await this.#records.loadAll();
    for (const record of records) this.#images.set(record.id, record);
    this.#byName = undefined;
    return problems;
  }

  list(): ImageRecord[] {
    return [...this.#images.values()];
  }

  get(id: string): ImageRecord | undefined {
    return this.#images.get(id);
  }

  /**
   * Finds an image by what a user or the kubelet may call it: its id (with or without
   * "sha256:"), a unique id prefix, a tag reference or a digest reference.
   */
  find(name: string): ImageRecord | undefined {
    const text = name.trim();
    const id = /^(sha256:)?([a-f0-9]{64})$/.exec(text);
    if (id) return this.#images.get(`sha256:${id[2]}`);
    // ImageStatus is polled for every container's image: a name is parsed once and
    // looked up in an index, not against every image's names (a cost that grew with images).
    const wanted = this.#referenceName(text);
    if (wanted) {
      this.#byName ??= this.#indexNames();
      const image = this.#byName.get(wanted);
      if (image) return image;
    }
    const prefix = /^(?:sha256:)?([a-f0-9]{3,63})$/.exec(text);
    if (prefix) {
      const matches = [...this.#images.keys()].filter((k) => k.startsWith(`sha256:${prefix[1]}`));
      if (matches.length === 1) return this.#images.get(matches[0]!);
      if (matches.length > 1) throw invalidArgument(`image id prefix "${text}" is ambiguous (${matches.length} images)`);
    }
    return undefined;
  }

  /** The tag or digest reference `text` names (a digest names content exactly; a tag only when there is no digest); null when it is none. */
  #referenceName(text: string): string | null {
    let wanted = this.#wanted.get(text);
    if (wanted === undefined) {
      let ref;
      try {
        ref = parseReference(text);
      } catch {
        ref = undefined;
      }
      wanted = ref ? (ref.digest ? `${repositoryName(ref)}@${ref.digest}` : (tagReference(ref) ?? null)) : null;
      // Bounded: the names asked for are the node's images', a few dozen; a flood of others starts it again.
      if (this.#wanted.size >= 1024) this.#wanted.clear();
      this.#wanted.set(text, wanted);
    }
    return wanted;
  }

  #indexNames(): Map<string, ImageRecord> {
    const index = new Map<string, ImageRecord>();
    for (const image of this.#images.values()) {
      // The first image with a name wins, as the search through them did.
      for (const name of [...image.repoDigests, ...image.repoTags]) if (!index.has(name)) index.set(name, image);
    }
    return index;
  }

  /** Records a pulled image, merging names with an existing record of the same id. */
  add(record: ImageRecord): Promise<ImageRecord> {
    return this.#mutex.lock(async () => {
      const existing = this.#images.get(record.id);
      const merged: ImageRecord = existing
        ? {
            ...existing,
            repoTags: union(existing.repoTags, record.repoTags),
            repoDigests: union(existing.repoDigests, record.repoDigests),
          }
        : record;
      // A tag names one image: take the new tags away from any other image.
      for (const other of this.#images.values()) {
        if (other.id === record.id) continue;
        const kept = other.repoTags.filter((t) => !record.repoTags.includes(t));
        if (kept.length !== other.repoTags.length) await this.#write({ ...other, repoTags: kept });
      }
      await this.#write(merged);
      return merged;
    });
  }

  /** Removes a record; true when there was one. */
  remove(id: string): Promise<boolean> {
    return this.#mutex.lock(async () => {
      if (!this.#images.has(id)) return false;
      await this.#records.delete(id);
      this.#images.delete(id);
      this.#byName = undefined;
      return true;
    });
  }

  async #write(record: ImageRecord): Promise<void> {
    await this.#records.put(record.id, record);
    this.#images.set(record.id, record);
    this.#byName = undefined;
  }
}

function union(a: string[], b: string[]): string[] {
  return [...new Set([...a, ...b])].sort();
}
