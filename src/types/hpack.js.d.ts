// The part of hpack.js (HPACK, RFC 7541) that berth uses: a decoder that keeps the
// dynamic table of one connection's header blocks.
declare module 'hpack.js' {
  interface DecodedField {
    name: string;
    value: string;
    neverIndex: boolean;
  }
  interface Decompressor {
    write(bytes: Buffer): void;
    execute(): void;
    read(): DecodedField | null;
  }
  const hpack: {
    decompressor: { create(options: { table: { size: number } }): Decompressor };
  };
  export default hpack;
}
