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

  constructor(root: string) {
    this.#records = new RecordStore(join(root, 'images'));
  }

  /** Loads every record; unreadable ones are reported and skipped, never fatal. */
  async load(): Promise<string[]> {
    const { records, problems } = await this.#records.loadAll();
    for (const record of records) this.#images.set(record.id, record);
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
    let ref;
    try {
      ref = parseReference(text);
    } catch {
      ref = undefined;
    }
    if (ref) {
      // A digest names content exactly; a tag only when there is no digest.
      const wanted = ref.digest ? `${repositoryName(ref)}@${ref.digest}` : tagReference(ref);
      for (const image of this.#images.values()) {
        if ((ref.digest ? image.repoDigests : image.repoTags).includes(wanted!)) return image;
      }
    }
    const prefix = /^(?:sha256:)?([a-f0-9]{3,63})$/.exec(text);
    if (prefix) {
      const matches = [...this.#images.keys()].filter((k) => k.startsWith(`sha256:${prefix[1]}`));
      if (matches.length === 1) return this.#images.get(matches[0]!);
      if (matches.length > 1) throw invalidArgument(`image id prefix "${text}" is ambiguous (${matches.length} images)`);
    }
    return undefined;
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
      return true;
    });
  }

  async #write(record: ImageRecord): Promise<void> {
    await this.#records.put(record.id, record);
    this.#images.set(record.id, record);
  }
}

function union(a: string[], b: string[]): string[] {
  return [...new Set([...a, ...b])].sort();
}
