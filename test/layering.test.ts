// berth's layering, checked: every import in src/ is parsed (static, dynamic, type-only
// and re-exports alike) and must point down the layers README's "Architecture" section
// draws, or sideways within its own folder. No root, no build of anything: it reads the
// sources beside dist/. A new top-level folder must be given a place here first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

/**
 * Bottom to top. A module may import its own folder and any folder of a lower layer;
 * folders of one layer do not import each other.
 */
export const LAYERS: string[][] = [
  ['gen', 'types', 'errors.ts', 'version.ts'],
  ['util'],
  ['config'],
  ['linux', 'store', 'server', 'metrics'],
  ['image', 'network', 'events', 'stream'],
  ['pod'],
  ['container'],
  ['cri', 'api'],
  ['daemon'],
  ['bin'],
];

/**
 * Folders beside the stack, with what each may import. cli/ is a client: the gRPC client
 * side (server/), the streaming protocols (stream/), generated messages, helpers.
 * csi/ and volume/ (the CSI driver to come) never reach into the CRI side.
 */
export const BESIDE: Record<string, string[]> = {
  cli: ['gen', 'types', 'errors.ts', 'version.ts', 'util', 'server', 'stream'],
  csi: ['gen', 'types', 'errors.ts', 'version.ts', 'util', 'config', 'linux', 'store', 'server', 'events', 'volume'],
  volume: ['gen', 'types', 'errors.ts', 'version.ts', 'util', 'config', 'linux', 'store', 'events'],
};

/** Who may import what beside the stack: bin/ starts the CLI. */
const MAY_IMPORT_BESIDE: Record<string, string[]> = { cli: ['bin'], csi: ['bin'], volume: ['bin', 'csi'] };

/** Protobuf and gRPC stay at the edges: generated code and the wire libraries only here. */
const WIRE_FOLDERS = new Set(['server', 'cri', 'api', 'cli', 'daemon', 'csi', 'gen']);
const WIRE_PACKAGES = /^@grpc\/|^@bufbuild\//;

function layerOf(folder: string): number | undefined {
  const index = LAYERS.findIndex((layer) => layer.includes(folder));
  return index < 0 ? undefined : index;
}

/** The top-level folder (or root file) of a path under src/. */
function folderOf(file: string): string {
  return relative(SRC, file).split(sep)[0]!;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

interface Import {
  from: string;
  to: string;
  specifier: string;
}

function importsOf(file: string): Import[] {
  const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  return info.importedFiles.map((f) => {
    const specifier = f.fileName;
    const to = specifier.startsWith('.') ? resolve(dirname(file), specifier) : specifier;
    return { from: file, to, specifier };
  });
}

/** Why an import breaks the layering, or undefined when it is fine. */
export function violation(fromFolder: string, toFolder: string): string | undefined {
  if (fromFolder === toFolder) return undefined;
  if (toFolder in BESIDE) {
    return (MAY_IMPORT_BESIDE[toFolder] ?? []).includes(fromFolder) ? undefined : `${toFolder}/ is beside the stack: only ${(MAY_IMPORT_BESIDE[toFolder] ?? []).join(', ')} may import it`;
  }
  if (fromFolder in BESIDE) {
    return BESIDE[fromFolder]!.includes(toFolder) ? undefined : `${fromFolder}/ may import only ${BESIDE[fromFolder]!.join(', ')}`;
  }
  const from = layerOf(fromFolder);
  const to = layerOf(toFolder);
  if (from === undefined) return `${fromFolder} has no layer: give it one in test/layering.test.ts and README's Architecture`;
  if (to === undefined) return `${toFolder} has no layer: give it one in test/layering.test.ts and README's Architecture`;
  if (to > from) return `points up: ${fromFolder} (layer ${from}) imports ${toFolder} (layer ${to})`;
  if (to === from) return `${fromFolder} and ${toFolder} share layer ${from} and must not import each other`;
  return undefined;
}

test('every import in src/ points down the layers', () => {
  const problems: string[] = [];
  for (const file of sourceFiles(SRC)) {
    const fromFolder = folderOf(file);
    if (fromFolder === 'gen') continue; // generated: imports only itself and protobuf-es
    for (const { to, specifier } of importsOf(file)) {
      if (!to.startsWith(SRC)) {
        if (WIRE_PACKAGES.test(specifier) && !WIRE_FOLDERS.has(fromFolder)) problems.push(`${relative(SRC, file)}: imports ${specifier}; protobuf and gRPC belong to ${[...WIRE_FOLDERS].join(', ')}`);
        continue;
      }
      const toFolder = folderOf(to.replace(/\.js$/, '.ts'));
      if (toFolder === 'gen' && !WIRE_FOLDERS.has(fromFolder)) {
        problems.push(`${relative(SRC, file)}: imports ${specifier}; generated messages belong to ${[...WIRE_FOLDERS].join(', ')}`);
        continue;
      }
      const why = violation(fromFolder, toFolder);
      if (why) problems.push(`${relative(SRC, file)}: imports ${specifier}: ${why}`);
    }
  }
  assert.deepEqual(problems, []);
});

test('every folder of src/ has a place', () => {
  const placed = new Set([...LAYERS.flat(), ...Object.keys(BESIDE)]);
  const unplaced = readdirSync(SRC).filter((name) => !placed.has(name));
  assert.deepEqual(unplaced, []);
});

test('the check itself: up, sideways and beside are refused; down is fine', () => {
  assert.equal(violation('container', 'pod'), undefined);
  assert.equal(violation('cri', 'container'), undefined);
  assert.match(violation('pod', 'container') ?? '', /points up/);
  assert.match(violation('config', 'image') ?? '', /points up/);
  assert.match(violation('image', 'network') ?? '', /share layer/);
  assert.match(violation('cli', 'cri') ?? '', /cli\/ may import only/);
  assert.match(violation('csi', 'container') ?? '', /csi\/ may import only/);
  assert.match(violation('cri', 'cli') ?? '', /beside the stack/);
  assert.equal(violation('bin', 'cli'), undefined);
  assert.match(violation('nowhere', 'util') ?? '', /has no layer/);
});
