// berthctl completion [bash|zsh|fish]: shell completion of berthctl's commands (and
// their aliases) and global flags, in the shapes crictl's completion prints.
import type { Command } from 'commander';

interface Entry {
  name: string;
  description: string;
}

function entries(program: Command): { commands: Entry[]; flags: string[] } {
  const commands: Entry[] = [];
  for (const command of program.commands) {
    for (const name of [command.name(), ...command.aliases()]) commands.push({ name, description: command.description() });
  }
  // Alphabetical, as crictl lists them; help last.
  commands.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  commands.push({ name: 'help', description: 'display help for a command' });
  const flags = [...program.options.map((o) => o.long).filter((l): l is string => Boolean(l)), '--help'];
  return { commands, flags };
}

export function completionScript(program: Command, shell: string): string {
  const { commands, flags } = entries(program);
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  switch (shell) {
    case 'bash':
      return [
        '_berthctl() {',
        '    local cur opts base',
        '    COMPREPLY=()',
        '    cur="${COMP_WORDS[COMP_CWORD]}"',
        `    opts="${[...commands.map((c) => c.name), ...flags].join('\n')}"`,
        '    COMPREPLY=( $(compgen -W "${opts}" -- ${cur}) )',
        '    return 0',
        '}',
        '',
        'complete -F _berthctl berthctl',
        '',
      ].join('\n');
    case 'zsh':
      return [
        '#compdef berthctl',
        '',
        '_berthctl() {',
        '  local -a cmds',
        `  cmds=(${commands.map((c) => quote(`${c.name}:${c.description}`)).join(' ')})`,
        "  _describe 'commands' cmds",
        '',
        '  local -a opts',
        `  opts=(${flags.map(quote).join(' ')})`,
        "  _describe 'global options' opts",
        '',
        '  return',
        '}',
        '',
        'compdef _berthctl berthctl',
        '',
      ].join('\n');
    case 'fish':
      return [
        '# berthctl fish shell completion',
        '',
        ...commands.map((c) => `complete -c berthctl -f -n '__fish_use_subcommand' -a ${quote(c.name)} -d ${quote(c.description)}`),
        ...flags.map((f) => `complete -c berthctl -n '__fish_use_subcommand' -l ${f.slice(2)}`),
        '',
      ].join('\n');
    default:
      throw new Error('only bash, zsh or fish are supported');
  }
}
