// Mechanical parity with crictl's command line: every verb (and verb alias) crictl
// v1.37 lists in its --help, and every flag of every verb and of the program (each
// name, long and short, whether it takes a value, its environment variable), read from
// crictl's own --help output, must exist in berthctl's program. The gaps are printed
// as one list, so a new crictl release shows at once what berthctl lacks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Command, Option } from 'commander';
import { berthctlProgram } from '../src/cli/program.js';
import { crictlBinary } from './helpers/crictl.js';
import { run } from './helpers/processes.js';
import { tempDir } from './helpers/tmp.js';

interface CliFlag {
  /** Every name, e.g. ['--pull-timeout', '--pt']. */
  names: string[];
  takesValue: boolean;
  env: string[];
}

/** The verbs of `crictl --help` ("images, image, img  List images" → ['images', 'image', 'img']). */
export function parseCommands(help: string): string[][] {
  const section = /\nCOMMANDS:\n([\s\S]*?)\n\n/.exec(help)?.[1] ?? '';
  return section
    .split('\n')
    .map((line) => /^ {3}(\S.*?)(?: {2,}|$)/.exec(line)?.[1])
    .filter((names): names is string => names !== undefined)
    .map((names) => names.split(', '));
}

/** The flags of a urfave/cli help text: lines "   --name value, -n value [ … ]  Description [$ENV]". */
export function parseFlags(help: string): CliFlag[] {
  const flags: CliFlag[] = [];
  for (const line of help.split('\n')) {
    const match = /^ {3}(-\S.*?)(?: {2,}(.*))?$/.exec(line);
    if (!match) continue;
    const spec = match[1]!.replace(/ \[ -.*\]$/, '');
    const parts = spec.split(', ');
    flags.push({
      names: parts.map((p) => p.split(' ')[0]!),
      takesValue: parts.some((p) => p.includes(' ')),
      env: [...(/\[(\$\w+(?:, \$\w+)*)\]$/.exec(match[2] ?? '')?.[1]?.matchAll(/\$(\w+)/g) ?? [])].map((m) => m[1]!),
    });
  }
  return flags;
}

/** The names an option answers to in commander (`--pt, --pull-timeout` keeps the first long one as `short`). */
const optionNames = (o: Option) => [o.long, o.short].filter((n): n is string => n !== undefined);

/** What berthctl lacks of crictl's flags on one command. */
function flagGaps(where: string, crictl: CliFlag[], command: Command): string[] {
  const gaps: string[] = [];
  const options = command.options as readonly Option[];
  for (const flag of crictl) {
    if (flag.names.includes('--help')) continue; // commander gives every command -h, --help
    const missing = flag.names.filter((n) => !options.some((o) => optionNames(o).includes(n)));
    if (missing.length > 0) {
      gaps.push(`${where}: ${missing.join(', ')}`);
      continue;
    }
    const option = options.find((o) => optionNames(o).includes(flag.names[0]!))!;
    const takesValue = option.required || option.optional;
    if (takesValue !== flag.takesValue) gaps.push(`${where}: ${flag.names[0]} ${flag.takesValue ? 'takes a value' : 'is a switch'} in crictl`);
    for (const env of flag.env) if (option.envVar !== env) gaps.push(`${where}: ${flag.names[0]} reads $${env} in crictl`);
  }
  return gaps;
}

/** The command a verb runs in berthctl: by name or alias; a group's default subcommand stands for it. */
function findCommand(program: Command, verb: string): Command | undefined {
  const command = program.commands.find((c) => c.name() === verb || c.aliases().includes(verb));
  const fallback = (command as { _defaultCommandName?: string } | undefined)?._defaultCommandName;
  return fallback ? command!.commands.find((c) => c.name() === fallback) : command;
}

test('urfave/cli help texts are read as they are written', () => {
  assert.deepEqual(parseCommands('X\n\nCOMMANDS:\n   images, image, img     List images\n   help, h  Shows\n\nGLOBAL'), [['images', 'image', 'img'], ['help', 'h']]);
  assert.deepEqual(parseFlags([
    '   --filter value, -f value [ --filter value, -f value ]  Filter output based on provided conditions.',
    '      * dangling=(boolean - true or false)',
    '   --auth AUTH_STRING          Use AUTH_STRING … [$CRICTL_AUTH]',
    '   --pull-timeout value, --pt value   Maximum time (default: 0s) [$CRICTL_PULL_TIMEOUT]',
    '   --all, -a   Show all (default: false)',
    '   runtime-endpoint:      Container Runtime Interface (CRI) runtime endpoint (default: "")',
  ].join('\n')), [
    { names: ['--filter', '-f'], takesValue: true, env: [] },
    { names: ['--auth'], takesValue: true, env: ['CRICTL_AUTH'] },
    { names: ['--pull-timeout', '--pt'], takesValue: true, env: ['CRICTL_PULL_TIMEOUT'] },
    { names: ['--all', '-a'], takesValue: false, env: [] },
  ]);
});

test("berthctl has every verb and flag of crictl v1.37's --help", async (t) => {
  const crictl = await crictlBinary();
  const home = await tempDir(t, 'crictl-flags-');
  const help = async (args: string[]) => {
    const r = await run(crictl, ['--config', '/dev/null', ...args, '--help'], { env: { PATH: process.env.PATH, HOME: home } });
    assert.equal(r.code, 0, `crictl ${args.join(' ')} --help: ${r.stderr}`);
    return r.stdout;
  };
  const program = berthctlProgram();
  const top = await help([]);
  const verbs = parseCommands(top);
  assert.ok(verbs.length > 30, `crictl's verbs read from its help (${verbs.length})`);
  const gaps = flagGaps('global', parseFlags(top.slice(top.indexOf('GLOBAL OPTIONS:'))), program);
  let checkedFlags = 0;
  for (const names of verbs) {
    const [verb] = names as [string];
    if (verb === 'help') {
      // commander's help command: `berthctl help VERB` (and crictl's `h` alias).
      for (const name of names) if (!program.commands.some((c) => c.name() === name || c.aliases().includes(name))) gaps.push(`verb ${name}`);
      continue;
    }
    const missing = names.filter((name) => findCommand(program, name) === undefined);
    if (missing.length > 0) gaps.push(...missing.map((name) => `verb ${name}`));
    const command = findCommand(program, verb);
    if (!command) continue;
    const flags = parseFlags((await help([verb])).replace(/^[\s\S]*?\nOPTIONS:\n/, ''));
    checkedFlags += flags.length;
    gaps.push(...flagGaps(verb, flags, command));
    // An alias runs the same thing: its flags too.
    for (const alias of names.slice(1)) {
      const aliased = findCommand(program, alias);
      if (aliased && aliased !== command) gaps.push(...flagGaps(`${verb} (as ${alias})`, flags, aliased));
    }
  }
  t.diagnostic(`${verbs.length} verbs, ${checkedFlags} verb flags checked; gaps: ${gaps.length === 0 ? 'none' : gaps.join('; ')}`);
  assert.deepEqual(gaps, [], `berthctl lacks what crictl has:\n  ${gaps.join('\n  ')}`);
});
