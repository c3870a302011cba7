#!/usr/bin/env node
// The installed berthctl's entry when its V8 startup snapshot cannot be used (another
// node, NODE_OPTIONS set, no snapshot made: see scripts/install.sh, which puts this file
// beside the one-file bundle berthctl.cjs with a #! line naming the node found at install
// time). It compiles the bundle with the V8 code cache install.sh made
// (berthctl.cjs.cache), so a call does not parse and compile the bundle's 1 MB of
// JavaScript again (measured when it was 2 MB: about 50 ms of the ~200 ms a `berthctl
// version` took). A cache V8 rejects (another node, another bundle) is ignored
// and the bundle compiled as usual; only install.sh (BERTHCTL_WRITE_CODE_CACHE) writes it.
'use strict';
const { readFileSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const Module = require('node:module');
const vm = require('node:vm');

const bundle = join(__dirname, 'berthctl.cjs');
const cacheFile = `${bundle}.cache`;
let cachedData;
try {
  cachedData = readFileSync(cacheFile);
} catch {
  cachedData = undefined;
}
// The bundle keeps its entry's #! line, which only a main module may have: blanked,
// so that line numbers in stack traces stay right.
const source = readFileSync(bundle, 'utf8').replace(/^#!.*/, '');
const script = new vm.Script(Module.wrap(source), { filename: bundle, cachedData });
if (process.env.BERTHCTL_WRITE_CODE_CACHE === '1') {
  // After the run, so that the functions the run compiled are in the cache too.
  process.once('beforeExit', () => writeFileSync(cacheFile, script.createCachedData()));
}
const bundleModule = { exports: {} };
script.runInThisContext()(bundleModule.exports, require, bundleModule, bundle, __dirname);
