#!/usr/bin/env node
// berthctl: a crictl-compatible command line for any CRI runtime (berthd by default).
// No top-level await: scripts/install.sh bundles this entry as CommonJS (see
// scripts/berthctl-launcher.cjs), which has none.
import { runBerthctl } from '../cli/main.js';

void runBerthctl();
