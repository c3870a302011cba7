// berth's proto files must be wire-identical to the published CRI and CSI protos: same
// packages, services, methods, messages, fields (name, number, type, label), enums.
// protoc compiles both; their descriptors are compared element by element.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fromBinary, isFieldSet } from '@bufbuild/protobuf';
import { FieldDescriptorProtoSchema, FileDescriptorSetSchema, type DescriptorProto, type EnumDescriptorProto, type FileDescriptorProto } from '@bufbuild/protobuf/wkt';
import { PACKAGE_ROOT, REFERENCE_DIR } from './helpers/paths.js';
import { run } from './helpers/processes.js';
import { tempDir } from './helpers/tmp.js';

async function compile(dir: string, includeDir: string, file: string, out: string): Promise<FileDescriptorProto> {
  const result = await run('protoc', [`-I${includeDir}`, `--descriptor_set_out=${out}`, file], { cwd: dir });
  assert.equal(result.code, 0, result.stderr);
  const set = fromBinary(FileDescriptorSetSchema, await readFile(out));
  return set.file.find((f) => f.name === file)!;
}

/** Every wire fact of a file as sorted lines, so a difference reads as a diff. */
function wireFacts(file: FileDescriptorProto): string[] {
  const facts: string[] = [`package ${file.package}`];
  const message = (m: DescriptorProto, prefix: string) => {
    const name = `${prefix}${m.name}`;
    facts.push(`message ${name}`);
    for (const f of m.field) {
      facts.push(`field ${name}.${f.name} = ${f.number} ${f.label} ${f.type} ${f.typeName} oneof=${isFieldSet(f, FieldDescriptorProtoSchema.field.oneofIndex) ? f.oneofIndex : '-'} optional=${f.proto3Optional}`);
    }
    for (const o of m.oneofDecl) facts.push(`oneof ${name}.${o.name}`);
    for (const r of m.reservedRange) facts.push(`reserved ${name} ${r.start}-${r.end}`);
    m.nestedType.forEach((n) => message(n, `${name}.`));
    m.enumType.forEach((e) => enumeration(e, `${name}.`));
  };
  const enumeration = (e: EnumDescriptorProto, prefix: string) => {
    for (const v of e.value) facts.push(`enum ${prefix}${e.name}.${v.name} = ${v.number}`);
  };
  file.messageType.forEach((m) => message(m, ''));
  file.enumType.forEach((e) => enumeration(e, ''));
  for (const s of file.service) {
    for (const m of s.method) {
      facts.push(`rpc ${s.name}.${m.name}(${m.clientStreaming ? 'stream ' : ''}${m.inputType}) ${m.serverStreaming ? 'stream ' : ''}${m.outputType}`);
    }
  }
  for (const x of file.extension) facts.push(`extension ${x.extendee} ${x.name} = ${x.number} ${x.type}`);
  return facts.sort();
}

const pairs = [
  { ours: 'runtime/v1/api.proto', reference: 'cri-api-v1.proto' },
  { ours: 'csi/v1/csi.proto', reference: 'csi.proto' },
];

for (const { ours, reference } of pairs) {
  test(`${ours} is wire-identical to the reference ${reference}`, { skip: !existsSync(join(REFERENCE_DIR, reference)) && 'reference specs not beside the checkout' }, async (t) => {
    const dir = await tempDir(t);
    // Debian's protoc 3.21 predates the debug_redact field option, a logging hint with
    // no wire effect; drop it from the reference so protoc can read the rest.
    const referenceText = (await readFile(join(REFERENCE_DIR, reference), 'utf8')).replaceAll(' [debug_redact = true]', '');
    await writeFile(join(dir, reference), referenceText);
    const theirs = await compile(dir, dir, reference, join(dir, 'reference.pb'));
    const mine = await compile(PACKAGE_ROOT, join(PACKAGE_ROOT, 'proto'), ours, join(dir, 'ours.pb'));
    const expected = wireFacts(theirs);
    assert.ok(expected.length > 100, 'the reference has its messages');
    assert.deepEqual(wireFacts(mine), expected);
  });
}
