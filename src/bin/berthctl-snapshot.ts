// The entry of berthctl's V8 startup snapshot. scripts/install.sh bundles it as CommonJS
// and runs `node --snapshot-blob berthctl.blob --build-snapshot` on it: the modules
// below are loaded and initialised then, once (the CRI descriptors built, commander and
// most verbs' modules evaluated), and each call starts from that heap and only parses
// its command line. Left out: the streaming verbs' modules (containers.js, which loads
// node:http through ws: Node 20 cannot snapshot it), loaded when they run, as node:http2
// (grpc-client.ts loads it at the first call). Nothing here may hold process state
// (argv, environment, stdio, sockets): a call reads those when it runs.
import { startupSnapshot } from 'node:v8';
import { runBerthctl } from '../cli/main.js';
import '../cli/runtime-client.js';
import '../cli/commands/version.js';
import '../cli/commands/info.js';
import '../cli/commands/images.js';
import '../cli/commands/pods.js';
import '../cli/commands/runtime-extras.js';
import '../cli/commands/config.js';
import '../cli/commands/completion.js';

startupSnapshot.setDeserializeMainFunction(() => void runBerthctl());
