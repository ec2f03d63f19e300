/**
 * `aetherium completion bash | zsh | fish`: a completion script for the shell, generated from the
 * CLI's own command tree (commander's commands, aliases, options and their choices), so it always
 * knows exactly the commands this version has. Options with a file for a value complete file names;
 * options with choices (`-o`, `--strategy`, …) complete those.
 */
import { Argument, type Command, type Option } from 'commander';
import { out } from '../output.ts';

export const SHELLS = ['bash', 'zsh', 'fish'] as const;
type Shell = (typeof SHELLS)[number];

interface OptionSpec {
  flags: string[];
  description: string;
  /** What its value is: choices, a file, anything; null: it takes none. */
  value: string[] | 'file' | 'any' | null;
}

interface CommandSpec {
  /** The canonical path, e.g. `vm create` ('' for the program). */
  path: string;
  name: string;
  aliases: string[];
  description: string;
  options: OptionSpec[];
  /** Choices of its positional arguments. */
  args: string[];
  children: CommandSpec[];
}

/** Options whose value is a path: completed with file names. */
const FILE_VALUE = /(^|-)(file|dir|config|ca|key)$/;

function optionSpec(option: Option): OptionSpec {
  const flags = [option.short, option.long].filter((f): f is string => Boolean(f));
  const takesValue = option.required || option.optional;
  const name = (option.long ?? '').replace(/^--/, '');
  return {
    flags,
    description: option.description,
    value: !takesValue ? null : option.argChoices ? [...option.argChoices] : FILE_VALUE.test(name) ? 'file' : 'any',
  };
}

function specOf(command: Command, path: string): CommandSpec {
  const options = command.options.filter((o) => !o.hidden).map(optionSpec);
  options.push({ flags: ['-h', '--help'], description: 'show help', value: null });
  const args = (command.registeredArguments as readonly Argument[]).flatMap((a) => a.argChoices ?? []);
  const children = command.commands.map((child) => specOf(child, path ? `${path} ${child.name()}` : child.name()));
  if (children.length > 0 && path === '')
    children.push({
      path: 'help',
      name: 'help',
      aliases: [],
      description: 'show help for a command',
      options: [],
      args: [],
      children: [],
    });
  return {
    path,
    name: command.name(),
    aliases: command.aliases(),
    description: command.description(),
    options,
    args,
    children,
  };
}

function walk(spec: CommandSpec): CommandSpec[] {
  return [spec, ...spec.children.flatMap(walk)];
}

/** The command tree of `program`, with its global options (valid at every level). */
export function commandTree(program: Command): { root: CommandSpec; all: CommandSpec[]; global: OptionSpec[] } {
  const root = specOf(program, '');
  // Help and version are answered at the top only; every other root option is valid anywhere.
  const global = root.options.filter((o) => !o.flags.some((f) => f === '--help' || f === '--version'));
  return { root, all: walk(root), global };
}

// ---- quoting -------------------------------------------------------------------------------------

/** A single-quoted word for sh, bash and zsh. */
const sq = (text: string) => `'${text.replaceAll("'", `'\\''`)}'`;
/** A single-quoted word for fish. */
const fq = (text: string) => `'${text.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
const oneLine = (text: string) => text.replace(/\s+/g, ' ').trim();

// ---- the parts bash and zsh share -----------------------------------------------------------------

/** `__aetherium_sub PATH WORD`: the canonical name of a subcommand (aliases too), or nothing. */
function subFunction(all: CommandSpec[]): string {
  const cases = all.flatMap((c) =>
    c.children.map((child) => {
      const patterns = [child.name, ...child.aliases].map((n) => `${sq(`${c.path}|${n}`)}`).join('|');
      return `    ${patterns}) echo ${child.name} ;;`;
    }),
  );
  return ['__aetherium_sub() {', '  case "$1|$2" in', ...cases, '  esac', '}'].join('\n');
}

/** `__aetherium_value PATH OPTION`: `@file`, `@any`, the choices, or nothing (it takes no value). */
function valueFunction(all: CommandSpec[], global: OptionSpec[]): string {
  const kind = (o: OptionSpec) =>
    o.value === 'file' ? '@file' : o.value === 'any' ? '@any' : (o.value ?? []).join(' ');
  const cases: string[] = [];
  for (const c of all)
    for (const o of c.options)
      if (o.value !== null && !global.includes(o))
        cases.push(`    ${o.flags.map((f) => sq(`${c.path}|${f}`)).join('|')}) echo ${sq(kind(o))} ;;`);
  for (const o of global)
    if (o.value !== null) cases.push(`    ${o.flags.map((f) => `*${sq(`|${f}`)}`).join('|')}) echo ${sq(kind(o))} ;;`);
  return ['__aetherium_value() {', '  case "$1|$2" in', ...cases, '  esac', '}'].join('\n');
}

/** The loop that finds the command path from the words before the cursor (bash and zsh). */
const PATH_LOOP = `    word=$WORD_AT
    if [[ -n $expect ]]; then expect=""; continue; fi
    if [[ $word == -- ]]; then return 0; fi
    if [[ $word == -* ]]; then
      [[ $word == *=* ]] && continue
      [[ -n $(__aetherium_value "$cmdpath" "$word") ]] && expect=1
      continue
    fi
    sub=$(__aetherium_sub "$cmdpath" "$word")
    [[ -n $sub ]] && cmdpath="\${cmdpath:+$cmdpath }$sub"`;

function bash(program: Command): string {
  const { all, global } = commandTree(program);
  const words = (c: CommandSpec, options: boolean) => {
    const opts = [...c.options, ...(c.path === '' ? [] : global)].flatMap((o) =>
      o.flags.filter((f) => f.startsWith('--')),
    );
    return options ? opts : [...c.children.flatMap((k) => [k.name, ...k.aliases]), ...c.args];
  };
  const table = (name: string, options: boolean) =>
    [
      `${name}() {`,
      '  case "$1" in',
      ...all.map((c) => `    ${sq(c.path)}) echo ${sq(words(c, options).join(' '))} ;;`),
      '  esac',
      '}',
    ].join('\n');
  return `# bash completion for aetherium, generated by \`aetherium completion bash\` from its commands.
# Load it now: source <(aetherium completion bash)
# For good: aetherium completion bash > ~/.local/share/bash-completion/completions/aetherium
${subFunction(all)}
${valueFunction(all, global)}
${table('__aetherium_words', false)}
${table('__aetherium_options', true)}
_aetherium() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" cmdpath="" word sub expect="" kind i
  COMPREPLY=()
  for ((i = 1; i < COMP_CWORD; i++)); do
${PATH_LOOP.replace('$WORD_AT', '"$' + '{COMP_WORDS[i]}"')}
  done
  if [[ -n $expect ]]; then
    kind=$(__aetherium_value "$cmdpath" "\${COMP_WORDS[COMP_CWORD-1]}")
    case "$kind" in
      @file) COMPREPLY=($(compgen -f -- "$cur")) ;;
      @any) ;;
      *) COMPREPLY=($(compgen -W "$kind" -- "$cur")) ;;
    esac
    return 0
  fi
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$(__aetherium_options "$cmdpath")" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$(__aetherium_words "$cmdpath")" -- "$cur"))
  fi
  return 0
}
complete -o default -F _aetherium aetherium
`;
}

function zsh(program: Command): string {
  const { all, global } = commandTree(program);
  const described = (name: string, items: (c: CommandSpec) => string[]) =>
    [
      `${name}() {`,
      '  case "$1" in',
      ...all
        .map((c) => [c, items(c)] as const)
        .filter(([, lines]) => lines.length > 0)
        .map(([c, lines]) => `    ${sq(c.path)}) print -rl -- ${lines.map(sq).join(' ')} ;;`),
      '  esac',
      '}',
    ].join('\n');
  const commands = (c: CommandSpec) =>
    c.children.flatMap((k) => [k.name, ...k.aliases].map((n) => `${n}:${oneLine(k.description)}`));
  const options = (c: CommandSpec) =>
    [...c.options, ...(c.path === '' ? [] : global)].flatMap((o) =>
      o.flags.map((f) => `${f}:${oneLine(o.description)}`),
    );
  const args = (c: CommandSpec) => c.args;
  return `#compdef aetherium
# zsh completion for aetherium, generated by \`aetherium completion zsh\` from its commands.
# Load it now: source <(aetherium completion zsh)
# For good: aetherium completion zsh > "\${fpath[1]}/_aetherium"
${subFunction(all)}
${valueFunction(all, global)}
${described('__aetherium_commands', commands)}
${described('__aetherium_options', options)}
${described('__aetherium_args', args)}
_aetherium() {
  local cmdpath="" word sub expect="" kind i
  local -a items choices
  for ((i = 2; i < CURRENT; i++)); do
${PATH_LOOP.replace('$WORD_AT', '"$' + '{words[i]}"')}
  done
  if [[ -n $expect ]]; then
    kind=$(__aetherium_value "$cmdpath" "\${words[CURRENT-1]}")
    case "$kind" in
      @file) _files ;;
      @any) _message 'a value' ;;
      *) choices=(\${=kind}); compadd -a choices ;;
    esac
    return
  fi
  if [[ \${words[CURRENT]} == -* ]]; then
    items=(\${(f)"$(__aetherium_options "$cmdpath")"})
    _describe -t options 'option' items
    return
  fi
  items=(\${(f)"$(__aetherium_commands "$cmdpath")"})
  choices=(\${(f)"$(__aetherium_args "$cmdpath")"})
  (( \${#items} )) && _describe -t commands 'command' items
  (( \${#choices} )) && compadd -a choices
  (( \${#items} + \${#choices} )) || _files
}
if [[ \${zsh_eval_context[-1]} == loadautofunc ]]; then
  _aetherium "$@"
else
  compdef _aetherium aetherium
fi
`;
}

function fish(program: Command): string {
  const { all, global } = commandTree(program);
  const lines: string[] = [];
  const subCases = all.flatMap((c) =>
    c.children.map(
      (child) =>
        `        case ${[child.name, ...child.aliases].map((n) => fq(`${c.path}|${n}`)).join(' ')}\n            echo ${child.name}`,
    ),
  );
  const valueCases: string[] = [];
  for (const c of all)
    for (const o of c.options)
      if (o.value !== null && !global.includes(o))
        valueCases.push(`        case ${o.flags.map((f) => fq(`${c.path}|${f}`)).join(' ')}\n            echo value`);
  for (const o of global)
    if (o.value !== null)
      valueCases.push(`        case ${o.flags.map((f) => fq(`*|${f}`)).join(' ')}\n            echo value`);
  lines.push(
    '# fish completion for aetherium, generated by `aetherium completion fish` from its commands.',
    '# Load it now: aetherium completion fish | source',
    '# For good: aetherium completion fish > ~/.config/fish/completions/aetherium.fish',
    'function __aetherium_sub --argument-names cmdpath word',
    '    switch "$cmdpath|$word"',
    ...subCases,
    '    end',
    'end',
    'function __aetherium_value --argument-names cmdpath opt',
    '    switch "$cmdpath|$opt"',
    ...valueCases,
    '    end',
    'end',
    '# The command path (`vm create`) of the words before the cursor.',
    'function __aetherium_path',
    '    set -l words (commandline -opc)',
    '    set -e words[1]',
    "    set -l cmdpath ''",
    '    set -l expect 0',
    '    for word in $words',
    '        if test $expect = 1',
    '            set expect 0',
    '            continue',
    '        end',
    '        if test "$word" = \'--\'',
    "            echo '--'",
    '            return',
    '        end',
    "        if string match -q -- '-*' $word",
    "            if not string match -q -- '*=*' $word",
    '                set -l value (__aetherium_value "$cmdpath" $word)',
    '                test -n "$value"; and set expect 1',
    '            end',
    '            continue',
    '        end',
    '        set -l sub (__aetherium_sub "$cmdpath" $word)',
    '        test -n "$sub"; and set cmdpath (string trim -- "$cmdpath $sub")',
    '    end',
    '    echo $cmdpath',
    'end',
    'function __aetherium_at --argument-names want',
    '    set -l here (__aetherium_path)',
    '    test "$here" = "$want"',
    'end',
    'complete -c aetherium -f',
  );
  const optionLine = (o: OptionSpec, condition: string | null) => {
    const parts = ['complete -c aetherium'];
    if (condition !== null) parts.push(`-n ${fq(`__aetherium_at ${fq(condition)}`)}`);
    for (const f of o.flags) parts.push(f.startsWith('--') ? `-l ${f.slice(2)}` : `-s ${f.slice(1)}`);
    if (o.value === 'file') parts.push('-r -F');
    else if (Array.isArray(o.value)) parts.push(`-r -f -a ${fq(o.value.join(' '))}`);
    else if (o.value === 'any') parts.push('-r');
    parts.push(`-d ${fq(oneLine(o.description))}`);
    return parts.join(' ');
  };
  for (const o of global) lines.push(optionLine(o, null));
  for (const c of all) {
    for (const child of c.children)
      for (const name of [child.name, ...child.aliases])
        lines.push(
          `complete -c aetherium -n ${fq(`__aetherium_at ${fq(c.path)}`)} -a ${fq(name)} -d ${fq(oneLine(child.description))}`,
        );
    if (c.args.length)
      lines.push(`complete -c aetherium -n ${fq(`__aetherium_at ${fq(c.path)}`)} -a ${fq(c.args.join(' '))}`);
    for (const o of c.options)
      if (!global.includes(o) && !o.flags.includes('--help')) lines.push(optionLine(o, c.path));
  }
  lines.push("complete -c aetherium -s h -l help -d 'show help'");
  return `${lines.join('\n')}\n`;
}

export function completionScript(program: Command, shell: Shell): string {
  return shell === 'bash' ? bash(program) : shell === 'zsh' ? zsh(program) : fish(program);
}

export function registerCompletionCommand(program: Command): void {
  program
    .command('completion')
    .description('print a completion script for bash, zsh or fish (source <(aetherium completion bash))')
    .addArgument(new Argument('<shell>', 'bash, zsh or fish').choices(SHELLS))
    .action((shell: Shell) => out(completionScript(program, shell)));
}
