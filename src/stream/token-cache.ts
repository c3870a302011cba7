// Single-use tokens for streaming URLs, as the kubelet's stream server keeps them: a
// CRI call stores its request and gets a token; the first request to the URL takes it.
// Used, unknown and expired tokens are all simply absent.
import { randomBytes } from 'node:crypto';

export const TOKEN_TTL_MS = 60_000;
const MAX_TOKENS = 1000;

interface Entry<T> {
  value: T;
  expires: number;
}

export class TokenCache<T> {
  readonly #entries = new Map<string, Entry<T>>();

  constructor(private readonly ttlMs = TOKEN_TTL_MS, private readonly now: () => number = Date.now) {}

  insert(value: T): string {
    this.#sweep();
    if (this.#entries.size >= MAX_TOKENS) throw new Error('too many pending streaming requests');
    // 8 random bytes, URL-safe (the kubelet's tokens are of the same strength).
    const token = randomBytes(8).toString('base64url');
    this.#entries.set(token, { value, expires: this.now() + this.ttlMs });
    return token;
  }

  /** Takes the request a token stands for: once only, and only before it expires. */
  consume(token: string): T | undefined {
    const entry = this.#entries.get(token);
    if (!entry) return undefined;
    this.#entries.delete(token);
    return entry.expires > this.now() ? entry.value : undefined;
  }

  #sweep(): void {
    const now = this.now();
    for (const [token, entry] of this.#entries) if (entry.expires <= now) this.#entries.delete(token);
  }
}
