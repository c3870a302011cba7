// berth's own tar parser (src/image/tar-reader.ts) and the synchronous layer unpack
// built on it (LayerUnpacker): every header encoding real layers use, bytes pushed in
// pieces of any size, damaged archives refused, and names that would leave the snapshot
// refused whichever header carries them (a pax path over a harmless ustar name too).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { lstat, mkdir, readFile, readdir, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { TarFormatError, TarReader, type TarHeader } from '../src/image/tar-reader.js';
import { unpackLayer } from '../src/image/layer-unpack.js';
import { buildTar, sha256, type LayerEntry } from './helpers/image-builder.js';
import { tempDir } from './helpers/tmp.js';

const LONG = `deep/${'a'.repeat(60)}/${'b'.repeat(60)}/long-file-name.txt`;
const LONG_TARGET = `${'t'.repeat(120)}/target`;

const ENTRIES: LayerEntry[] = [
  { type: 'dir', path: 'dir/', mode: 0o750, uid: 1000, gid: 1000 },
  { type: 'file', path: 'dir/f', content: 'hello', mode: 0o640, uid: 1000, gid: 2000, xattrs: { 'user.berth': 'yes' } },
  { type: 'file', path: LONG, content: Buffer.alloc(70_000, 7) },
  { type: 'symlink', path: 'link', target: LONG_TARGET },
  { type: 'hardlink', path: 'hard', target: 'dir/f' },
  { type: 'fifo', path: 'pipe' },
  { type: 'char', path: 'null', major: 1, minor: 3 },
  { type: 'file', path: 'empty', content: '' },
];

interface Member {
  header: TarHeader;
  data: Buffer;
}

/** Parses tar pushed in pieces of `piece` bytes. */
function parse(tar: Buffer, piece: number): Member[] {
  const members: Member[] = [];
  let chunks: Buffer[] = [];
  const reader = new TarReader({
    header: (header) => {
      members.push({ header, data: Buffer.alloc(0) });
      chunks = [];
    },
    data: (chunk) => chunks.push(Buffer.from(chunk)),
    end: () => {
      members[members.length - 1]!.data = Buffer.concat(chunks);
    },
  });
  for (let offset = 0; offset < tar.length; offset += piece) reader.push(tar.subarray(offset, offset + piece));
  reader.end();
  return members;
}

test('the tar reader reads pax, ustar-prefix and GNU long names alike, in pieces of any size', () => {
  for (const longNames of ['pax', 'ustar', 'gnu'] as const) {
    const tar = buildTar(ENTRIES, { longNames });
    const whole = parse(tar, tar.length);
    for (const piece of [1, 7, 511, 512, 513, 65536]) assert.deepEqual(parse(tar, piece), whole, `${longNames}, pieces of ${piece}`);
    const byName = new Map(whole.map((m) => [m.header.name, m]));
    assert.deepEqual([...byName.keys()], ['dir/', 'dir/f', LONG, 'link', 'hard', 'pipe', 'null', 'empty'], longNames);
    const f = byName.get('dir/f')!;
    assert.equal(f.header.type, 'file');
    assert.equal(f.data.toString(), 'hello');
    assert.deepEqual([f.header.mode, f.header.uid, f.header.gid, f.header.size], [0o640, 1000, 2000, 5]);
    assert.equal(f.header.pax['SCHILY.xattr.user.berth'], 'yes');
    assert.deepEqual(byName.get(LONG)!.data, Buffer.alloc(70_000, 7), `${longNames}: the long-named file's data`);
    assert.equal(byName.get('link')!.header.type, 'symlink');
    if (longNames !== 'ustar') assert.equal(byName.get('link')!.header.linkname, LONG_TARGET, longNames);
    assert.deepEqual([byName.get('hard')!.header.type, byName.get('hard')!.header.linkname], ['link', 'dir/f']);
    assert.deepEqual([byName.get('null')!.header.type, byName.get('null')!.header.devmajor, byName.get('null')!.header.devminor], ['character-device', 1, 3]);
    assert.equal(byName.get('pipe')!.header.type, 'fifo');
    assert.equal(byName.get('dir/')!.header.type, 'directory');
  }
});

test('the tar reader reads what GNU tar writes (posix format, base-256 ids, global pax records)', { skip: existsSync('/usr/bin/tar') ? false : 'GNU tar is missing' }, async (t) => {
  const dir = await tempDir(t, 'tar-reader-');
  const src = join(dir, 'src');
  await mkdir(join(src, LONG.split('/').slice(0, -1).join('/')), { recursive: true });
  await writeFile(join(src, LONG), 'long\n');
  await writeFile(join(src, 'big-owner'), 'x');
  const tar = (format: string, extra: string[] = []) =>
    execFileSync('tar', ['-C', src, `--format=${format}`, '--owner=big:3000000', '--group=root:0', '--sort=name', ...extra, '-cf', '-', '.'], { maxBuffer: 1 << 26 });
  for (const format of ['posix', 'gnu']) {
    const members = parse(tar(format), 1000);
    const long = members.find((m) => m.header.name === `./${LONG}`);
    assert.ok(long, `${format}: the long name (${members.map((m) => m.header.name).join(', ')})`);
    assert.equal(long.data.toString(), 'long\n');
    // 3000000 is more than the 7 octal digits of a ustar uid: pax 'uid' or GNU base-256.
    assert.equal(members.find((m) => m.header.name === './big-owner')!.header.uid, 3_000_000, format);
  }
  const global = parse(tar('posix', ['--pax-option=comment=hello']), 512);
  assert.equal(global.find((m) => m.header.name === './big-owner')!.header.pax.comment, 'hello', 'a global pax record applies to the members after it');
});

test('the tar reader refuses a damaged header and an archive cut short', () => {
  const tar = buildTar([{ type: 'file', path: 'a', content: 'abc' }]);
  const damaged = Buffer.from(tar);
  damaged[10] = 0x41; // inside the name: the checksum no longer matches
  assert.throws(() => parse(damaged, 512), (err: unknown) => err instanceof TarFormatError && /checksum/.test(err.message));
  // Cut inside the data of the member, and inside a header.
  assert.throws(() => parse(tar.subarray(0, 514), 512), /unexpected end of data/);
  assert.throws(() => parse(tar.subarray(0, 100), 512), /unexpected end of data/);
  const octal = Buffer.from(tar);
  octal.write('9', 124); // the size field, with its checksum mended
  octal.write('        ', 148);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += octal[i]!;
  octal.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  assert.throws(() => parse(octal, 512), /size field is not an octal number/);
});

/** A layer whose only member is `name` (written in its ustar name field) with a pax 'path' record. */
function paxLayer(ustarName: string, paxPath: string): Buffer {
  const tar = buildTar([{ type: 'file', path: ustarName, content: 'escaped\n' }]);
  const record = (key: string, value: string) => {
    const body = ` ${key}=${value}\n`;
    let length = body.length + 1;
    while (`${length}${body}`.length !== length) length++;
    return `${length}${body}`;
  };
  const paxData = Buffer.from(record('path', paxPath));
  const paxHeader = Buffer.from(tar.subarray(0, 512));
  paxHeader.fill(0, 0, 100);
  paxHeader.write('PaxHeader', 0);
  paxHeader.write(paxData.length.toString(8).padStart(11, '0'), 124);
  paxHeader.write('x', 156);
  paxHeader.write('        ', 148);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += paxHeader[i]!;
  paxHeader.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  const padded = Buffer.concat([paxData, Buffer.alloc((512 - (paxData.length % 512)) % 512)]);
  return Buffer.concat([paxHeader, padded, tar]);
}

async function* chunksOf(data: Buffer, size: number): AsyncIterable<Uint8Array> {
  for (let offset = 0; offset < data.length; offset += size) yield data.subarray(offset, offset + size);
}

test('a pax path leaving the snapshot is refused although the ustar name is harmless', async (t) => {
  const dir = await tempDir(t, 'tar-reader-');
  const marker = `berth-pax-escape-${process.pid}`;
  const target = join(dir, 'a', 'b', 'snapshot');
  await mkdir(target, { recursive: true });
  const tar = paxLayer('harmless', `../../${marker}`);
  assert.deepEqual(
    parse(tar, 512).map((m) => m.header.name),
    [`../../${marker}`],
    'the pax path is the name',
  );
  await assert.rejects(unpackLayer(chunksOf(gzipSync(tar), 100), target), /refusing layer: member ".*" leaves the layer with "\.\."/);
  assert.equal(existsSync(join(dir, 'a', marker)), false, 'nothing written outside');
  assert.deepEqual(await readdir(target), []);
});

test('the synchronous unpack: gzip (two members), zstd and plain layers give the same tree and diff ID', { skip: existsSync('/usr/bin/zstd') ? false : 'zstd is missing' }, async (t) => {
  const dir = await tempDir(t, 'tar-reader-');
  const tar = buildTar(ENTRIES);
  // gzip members may be concatenated (pigz, some registries' re-compression).
  const twoMembers = Buffer.concat([gzipSync(tar.subarray(0, 70_000)), gzipSync(tar.subarray(70_000))]);
  const blobs: Array<[string, Buffer]> = [
    ['gzip', twoMembers],
    ['zstd', execFileSync('zstd', ['-q', '-c'], { input: tar })],
    ['plain', tar],
  ];
  for (const [name, blob] of blobs) {
    const target = join(dir, name);
    await mkdir(target);
    for (const piece of [3, 65536]) {
      const into = join(target, String(piece));
      await mkdir(into);
      const result = await unpackLayer(chunksOf(blob, piece), into);
      assert.deepEqual(result, { diffId: sha256(tar), tarSize: tar.length }, `${name} in pieces of ${piece}`);
      assert.equal(await readFile(join(into, 'dir/f'), 'utf8'), 'hello');
      assert.deepEqual(await readFile(join(into, LONG)), Buffer.alloc(70_000, 7));
      assert.equal(await readlink(join(into, 'link')), LONG_TARGET);
      const [f, hard] = await Promise.all([lstat(join(into, 'dir/f')), lstat(join(into, 'hard'))]);
      assert.equal(hard.ino, f.ino, 'the hard link');
      assert.equal(f.mode & 0o7777, 0o640);
      if (process.getuid?.() === 0) assert.deepEqual([f.uid, f.gid], [1000, 2000]);
      assert.equal((await lstat(join(into, 'pipe'))).isFIFO(), true);
      assert.equal((await lstat(join(into, 'dir'))).mode & 0o7777, 0o750);
    }
  }
});

test('a damaged or cut gzip layer fails as InvalidArgument', async (t) => {
  const dir = await tempDir(t, 'tar-reader-');
  const blob = gzipSync(buildTar(ENTRIES));
  const corrupt = Buffer.from(blob);
  corrupt[Math.floor(blob.length / 2)]! ^= 0xff;
  for (const [name, bytes] of [
    ['corrupt', corrupt],
    ['cut', blob.subarray(0, blob.length - 100)],
  ] as const) {
    const target = join(dir, name);
    await mkdir(target);
    await assert.rejects(unpackLayer(chunksOf(bytes, 4096), target), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'InvalidArgument', `${name}: ${err.message}`);
      assert.match(err.message, /layer is not a valid tar archive/);
      return true;
    });
  }
});
