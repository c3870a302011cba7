// crictl's `-o go-template --template T`: Go's text/template run over the JSON document
// crictl would print (decoded with UseNumber, with crictl's functions json, title, lower,
// upper and missingkey=error). This is a small evaluator of the part of text/template
// that such templates use: {{.a.b}}, $ and $variables, pipelines with |, parentheses,
// if / else if / else, range (with $i, $v :=) / else, with / else, comments, {{- -}}
// trimming, string, raw-string, number, bool and nil literals, and the functions json,
// title, lower, upper, len, index, print, printf, println, not, and, or, eq, ne, lt, le,
// gt, ge. Anything else (define, template, block, break, continue, methods…) is refused
// with an error naming it rather than printed wrong.

/** A JSON number as Go's json.Number holds it: its text (a string kind for eq/ne/truth). */
class JsonNumber {
  constructor(readonly text: string) {}
}

export class TemplateError extends Error {}

type Node =
  | { kind: 'text'; text: string }
  | { kind: 'action'; pipe: Pipeline; at: string }
  | { kind: 'if' | 'with'; pipe: Pipeline; body: Node[]; orElse: Node[]; at: string }
  | { kind: 'range'; pipe: Pipeline; body: Node[]; orElse: Node[]; at: string };

interface Pipeline {
  decl: string[];
  commands: Operand[][];
}

type Operand =
  | { kind: 'field'; base: 'dot' | string; path: string[]; text: string }
  | { kind: 'func'; name: string }
  | { kind: 'literal'; value: unknown; text: string }
  | { kind: 'sub'; pipe: Pipeline; path: string[]; text: string };

const NAME = 'tmplExecuteRawJSON';
const UNSUPPORTED = new Set(['define', 'template', 'block', 'break', 'continue']);
const FUNCS = new Set(['json', 'title', 'lower', 'upper', 'len', 'index', 'print', 'printf', 'println', 'not', 'and', 'or', 'eq', 'ne', 'lt', 'le', 'gt', 'ge']);

/** Runs a template over a JSON value (as crictl: the document as JSON, decoded again). */
export function executeGoTemplate(template: string, data: unknown): string {
  const root = toGo(JSON.parse(JSON.stringify(data ?? null)));
  let nodes: Node[];
  try {
    nodes = parse(template);
  } catch (err) {
    throw new TemplateError(`failed to generate go-template: ${(err as Error).message}`);
  }
  let out = '';
  const vars: Array<[string, unknown]> = [['$', root]];
  try {
    run(nodes, root, vars, (s) => (out += s));
  } catch (err) {
    throw new TemplateError(`failed to template data: ${(err as Error).message}`);
  }
  return out;
}

/** Parses only, to reject a bad template before any call (crictl's validateTemplate). */
export function checkGoTemplate(template: string): void {
  parse(template);
}

function toGo(value: unknown): unknown {
  if (typeof value === 'number') return new JsonNumber(String(value));
  if (Array.isArray(value)) return value.map(toGo);
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toGo(v)]));
  return value;
}

// ---- lexing and parsing ----

interface Action {
  body: string;
  line: number;
  col: number;
}

function split(template: string): Array<string | Action> {
  const parts: Array<string | Action> = [];
  let i = 0;
  while (i < template.length) {
    const open = template.indexOf('{{', i);
    if (open < 0) {
      parts.push(template.slice(i));
      break;
    }
    let text = template.slice(i, open);
    let start = open + 2;
    if (template.startsWith('- ', start) || template.startsWith('-\t', start) || template.startsWith('-\n', start)) {
      text = text.replace(/\s+$/, '');
      start += 1;
    }
    // A comment may hold "}}" inside /* */.
    let close: number;
    const afterSpace = template.slice(start).match(/^\s*/)![0].length;
    if (template.startsWith('/*', start + afterSpace)) {
      const end = template.indexOf('*/', start + afterSpace + 2);
      if (end < 0) throw templateError(template, open, 'unclosed comment');
      close = template.indexOf('}}', end + 2);
    } else close = findClose(template, start);
    if (close < 0) throw templateError(template, open, 'unclosed action');
    let body = template.slice(start, close);
    let next = close + 2;
    if (/\s-$/.test(body)) {
      body = body.slice(0, -1);
      next = next + template.slice(next).match(/^\s*/)![0].length;
    }
    if (text) parts.push(text);
    const before = template.slice(0, open);
    const line = before.split('\n').length;
    parts.push({ body, line, col: open - before.lastIndexOf('\n') - 1 + 2 });
    i = next;
    // Trim of the text that follows is done by moving i past it above.
  }
  return parts;
}

/** The "}}" that ends an action, skipping quoted strings. */
function findClose(s: string, from: number): number {
  for (let i = from; i < s.length; i++) {
    const c = s[i];
    if (c === '"') {
      for (i++; i < s.length && s[i] !== '"'; i++) if (s[i] === '\\') i++;
    } else if (c === '`') {
      i = s.indexOf('`', i + 1);
      if (i < 0) return -1;
    } else if (c === '}' && s[i + 1] === '}') return i;
  }
  return -1;
}

function templateError(template: string, offset: number, message: string): TemplateError {
  const before = template.slice(0, offset);
  return new TemplateError(`template: ${NAME}:${before.split('\n').length}: ${message}`);
}

type Token = { t: 'field' | 'var' | 'ident' | 'string' | 'number' | 'op'; v: string };

function tokenize(body: string, where: string): Token[] {
  const tokens: Token[] = [];
  const re = /\s+|(\$[\w]*(?:\.[\w]+)*)|((?:\.[\w]+)+|\.)|("(?:[^"\\]|\\.)*")|(`[^`]*`)|(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)|(:=|=|\||\(|\)|,)|([A-Za-z_]\w*)|(.)/gy;
  let m: RegExpExecArray | null;
  while ((m = re.exec(body))) {
    if (m[0].trim() === '') continue;
    if (m[1]) tokens.push({ t: 'var', v: m[1] });
    else if (m[2]) tokens.push({ t: 'field', v: m[2] });
    else if (m[3]) tokens.push({ t: 'string', v: JSON.parse(m[3]) as string });
    else if (m[4]) tokens.push({ t: 'string', v: m[4].slice(1, -1) });
    else if (m[5]) tokens.push({ t: 'number', v: m[5] });
    else if (m[6]) tokens.push({ t: 'op', v: m[6] });
    else if (m[7]) tokens.push({ t: 'ident', v: m[7] });
    else throw new TemplateError(`template: ${NAME}:${where}: unexpected "${m[8]}" in command`);
  }
  return tokens;
}

function parse(template: string): Node[] {
  const parts = split(template);
  let pos = 0;
  const parseList = (until: Set<string>): { nodes: Node[]; end: string; rest: Token[] } => {
    const nodes: Node[] = [];
    while (pos < parts.length) {
      const part = parts[pos++]!;
      if (typeof part === 'string') {
        nodes.push({ kind: 'text', text: part });
        continue;
      }
      const where = `${part.line}:${part.col}`;
      if (/^\s*\/\*[\s\S]*\*\/\s*$/.test(part.body)) continue;
      const tokens = tokenize(part.body, where);
      const first = tokens[0];
      if (!first) throw new TemplateError(`template: ${NAME}:${part.line}: missing value for command`);
      if (first.t === 'ident' && UNSUPPORTED.has(first.v)) {
        throw new TemplateError(`berthctl's go-template does not support {{${first.v}}} (supported: fields, $variables, pipelines, if/else, range, with and the functions ${[...FUNCS].join(', ')})`);
      }
      if (first.t === 'ident' && (first.v === 'end' || first.v === 'else')) {
        if (!until.has(first.v)) throw new TemplateError(`template: ${NAME}:${part.line}: unexpected {{${first.v}}}`);
        return { nodes, end: first.v, rest: tokens.slice(1) };
      }
      if (first.t === 'ident' && (first.v === 'if' || first.v === 'range' || first.v === 'with')) {
        nodes.push(parseControl(first.v, tokens.slice(1), where));
        continue;
      }
      nodes.push({ kind: 'action', pipe: parsePipeline(tokens, where), at: part.body.trim() });
    }
    if (until.size > 0) throw new TemplateError(`template: ${NAME}: unexpected EOF`);
    return { nodes, end: '', rest: [] };
  };
  const parseControl = (kind: 'if' | 'range' | 'with', tokens: Token[], where: string): Node => {
    const pipe = parsePipeline(tokens, where);
    const body = parseList(new Set(['end', 'else']));
    let orElse: Node[] = [];
    if (body.end === 'else') {
      if (body.rest.length > 0 && body.rest[0]!.t === 'ident' && (body.rest[0]!.v === 'if' || body.rest[0]!.v === 'with') && kind !== 'range') {
        // {{else if …}}: a nested control that shares this one's {{end}}.
        orElse = [parseControl(body.rest[0]!.v as 'if' | 'with', body.rest.slice(1), where)];
      } else {
        const rest = parseList(new Set(['end']));
        orElse = rest.nodes;
      }
    }
    return { kind, pipe, body: body.nodes, orElse, at: `${kind} ${tokens.map((t) => t.v).join(' ')}` };
  };
  return parseList(new Set()).nodes;
}

function parsePipeline(tokens: Token[], where: string): Pipeline {
  let i = 0;
  const decl: string[] = [];
  // $x := …  or  $i, $v := …
  const assign = tokens.findIndex((t) => t.t === 'op' && (t.v === ':=' || t.v === '='));
  if (assign > 0 && tokens.slice(0, assign).every((t) => t.t === 'var' || (t.t === 'op' && t.v === ','))) {
    decl.push(...tokens.slice(0, assign).filter((t) => t.t === 'var').map((t) => t.v));
    i = assign + 1;
  }
  const commands: Operand[][] = [];
  let current: Operand[] = [];
  const operand = (): Operand => {
    const tok = tokens[i++]!;
    switch (tok.t) {
      case 'field':
        return { kind: 'field', base: 'dot', path: tok.v === '.' ? [] : tok.v.slice(1).split('.'), text: tok.v };
      case 'var': {
        const [name, ...path] = tok.v.split('.');
        return { kind: 'field', base: name!, path, text: tok.v };
      }
      case 'string':
        return { kind: 'literal', value: tok.v, text: JSON.stringify(tok.v) };
      case 'number':
        return { kind: 'literal', value: Number(tok.v), text: tok.v };
      case 'ident':
        if (tok.v === 'true' || tok.v === 'false') return { kind: 'literal', value: tok.v === 'true', text: tok.v };
        if (tok.v === 'nil') return { kind: 'literal', value: null, text: tok.v };
        if (!FUNCS.has(tok.v)) throw new TemplateError(`template: ${NAME}:${where}: function "${tok.v}" not defined`);
        return { kind: 'func', name: tok.v };
      case 'op':
        if (tok.v === '(') {
          let depth = 1;
          const start = i;
          while (i < tokens.length && depth > 0) {
            if (tokens[i]!.t === 'op' && tokens[i]!.v === '(') depth++;
            if (tokens[i]!.t === 'op' && tokens[i]!.v === ')') depth--;
            i++;
          }
          if (depth > 0) throw new TemplateError(`template: ${NAME}:${where}: unclosed left paren`);
          const inner = parsePipeline(tokens.slice(start, i - 1), where);
          // (…).field
          const next = tokens[i];
          const path = next && next.t === 'field' && next.v !== '.' ? (i++, next.v.slice(1).split('.')) : [];
          return { kind: 'sub', pipe: inner, path, text: '(…)' };
        }
        throw new TemplateError(`template: ${NAME}:${where}: unexpected "${tok.v}" in operand`);
      default:
        throw new TemplateError(`template: ${NAME}:${where}: unexpected token`);
    }
  };
  while (i < tokens.length) {
    const tok = tokens[i]!;
    if (tok.t === 'op' && tok.v === '|') {
      if (current.length === 0) throw new TemplateError(`template: ${NAME}:${where}: missing command`);
      commands.push(current);
      current = [];
      i++;
      continue;
    }
    current.push(operand());
  }
  if (current.length === 0) throw new TemplateError(`template: ${NAME}:${where}: missing value for command`);
  commands.push(current);
  return { decl, commands };
}

// ---- evaluation ----

function run(nodes: Node[], dot: unknown, vars: Array<[string, unknown]>, write: (s: string) => void): void {
  for (const node of nodes) {
    switch (node.kind) {
      case 'text':
        write(node.text);
        break;
      case 'action': {
        const value = evalPipeline(node.pipe, dot, vars, node.at);
        if (node.pipe.decl.length === 0) write(printValue(value));
        break;
      }
      case 'if':
      case 'with': {
        const scope = vars.length;
        const value = evalPipeline(node.pipe, dot, vars, node.at);
        if (truth(value)) run(node.body, node.kind === 'with' ? value : dot, vars, write);
        else run(node.orElse, dot, vars, write);
        vars.length = scope;
        break;
      }
      case 'range': {
        const scope = vars.length;
        const decl = node.pipe.decl;
        const value = evalPipeline({ decl: [], commands: node.pipe.commands }, dot, vars, node.at);
        let items: Array<[unknown, unknown]>;
        if (Array.isArray(value)) items = value.map((v, i) => [new JsonNumber(String(i)), v]);
        else if (isMap(value)) items = Object.keys(value).sort().map((k) => [k, value[k]]);
        else if (value === null || value === undefined) items = [];
        else throw execError(node.at, `range can't iterate over ${printValue(value)}`);
        if (items.length === 0) run(node.orElse, dot, vars, write);
        for (const [key, item] of items) {
          if (decl.length === 1) vars.push([decl[0]!, item]);
          else if (decl.length === 2) vars.push([decl[0]!, key], [decl[1]!, item]);
          run(node.body, item, vars, write);
          vars.length = scope;
        }
        break;
      }
    }
  }
}

function execError(at: string, message: string): TemplateError {
  return new TemplateError(`template: ${NAME}: executing "${NAME}" at <${at}>: ${message}`);
}

function evalPipeline(pipe: Pipeline, dot: unknown, vars: Array<[string, unknown]>, at: string): unknown {
  let value: unknown;
  let first = true;
  for (const command of pipe.commands) {
    value = evalCommand(command, dot, vars, at, first ? undefined : { value });
    first = false;
  }
  if (pipe.decl.length === 1) vars.push([pipe.decl[0]!, value]);
  return value;
}

function evalCommand(command: Operand[], dot: unknown, vars: Array<[string, unknown]>, at: string, piped?: { value: unknown }): unknown {
  const [head, ...rest] = command;
  if (head!.kind === 'func') {
    const args = rest.map((o) => evalOperand(o, dot, vars, at));
    if (piped) args.push(piped.value);
    return callFunc(head!.name, args, at);
  }
  if (rest.length > 0 || piped) throw execError(at, `can't give argument to non-function ${head!.kind === 'field' ? head!.text : 'value'}`);
  return evalOperand(head!, dot, vars, at);
}

function evalOperand(op: Operand, dot: unknown, vars: Array<[string, unknown]>, at: string): unknown {
  switch (op.kind) {
    case 'literal':
      return op.value;
    case 'func':
      return callFunc(op.name, [], at);
    case 'sub':
      return walk(evalPipeline(op.pipe, dot, [...vars], at), op.path, at, op.text);
    case 'field': {
      let base = dot;
      if (op.base !== 'dot') {
        const found = [...vars].reverse().find(([name]) => name === op.base);
        if (!found) throw new TemplateError(`template: ${NAME}: undefined variable: ${op.base}`);
        base = found[1];
      }
      return walk(base, op.path, at, op.text);
    }
  }
}

function walk(value: unknown, path: string[], at: string, text: string): unknown {
  let current = value;
  for (const key of path) {
    if (isMap(current)) {
      // missingkey=error, as crictl sets it.
      if (!(key in current)) throw execError(at || text, `map has no entry for key "${key}"`);
      current = current[key];
    } else if (current === null || current === undefined) {
      throw execError(at || text, `nil pointer evaluating interface {}.${key}`);
    } else {
      throw execError(at || text, `can't evaluate field ${key} in type ${goType(current)}`);
    }
  }
  return current;
}

const isMap = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof JsonNumber);

function goType(v: unknown): string {
  if (Array.isArray(v)) return '[]interface {}';
  if (v instanceof JsonNumber) return 'json.Number';
  if (typeof v === 'string') return 'string';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float64';
  return 'interface {}';
}

/** text/template's truth: false, 0, nil, and empty strings, arrays and maps are false. */
function truth(v: unknown): boolean {
  if (v === null || v === undefined || v === false || v === 0 || v === '') return false;
  if (v instanceof JsonNumber) return v.text !== '';
  if (Array.isArray(v)) return v.length > 0;
  if (isMap(v)) return Object.keys(v).length > 0;
  return true;
}

/** fmt's %v of a decoded JSON value, as text/template prints it. */
export function printValue(v: unknown, nested = false): string {
  if (v === null || v === undefined) return nested ? '<nil>' : '<no value>';
  if (v instanceof JsonNumber) return v.text;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `[${v.map((x) => printValue(x, true)).join(' ')}]`;
  if (isMap(v)) return `map[${Object.keys(v).sort().map((k) => `${k}:${printValue(v[k], true)}`).join(' ')}]`;
  return String(v);
}

/** Back to plain JSON (json.Number as a number), for the json function. */
function toJson(v: unknown): unknown {
  if (v instanceof JsonNumber) return Number(v.text);
  if (Array.isArray(v)) return v.map(toJson);
  if (isMap(v)) return Object.fromEntries(Object.keys(v).sort().map((k) => [k, toJson(v[k])]));
  return v;
}

/** Comparison operands as Go's eq sees them: json.Number is a string kind. */
function basic(v: unknown, at: string): { kind: 'string' | 'number' | 'bool' | 'nil'; value: string | number | boolean | null } {
  if (v === null || v === undefined) return { kind: 'nil', value: null };
  if (v instanceof JsonNumber || typeof v === 'string') return { kind: 'string', value: v instanceof JsonNumber ? v.text : v };
  if (typeof v === 'number') return { kind: 'number', value: v };
  if (typeof v === 'boolean') return { kind: 'bool', value: v };
  throw execError(at, 'invalid type for comparison');
}

function compare(name: string, a: unknown, b: unknown, at: string): number {
  const x = basic(a, at);
  const y = basic(b, at);
  if (x.kind !== y.kind) throw execError(at, `error calling ${name}: incompatible types for comparison`);
  if (x.value === y.value) return 0;
  if (x.kind === 'bool' || x.kind === 'nil') {
    if (name !== 'eq' && name !== 'ne') throw execError(at, `error calling ${name}: invalid type for comparison`);
    return 1;
  }
  return (x.value as string | number) < (y.value as string | number) ? -1 : 1;
}

function callFunc(name: string, args: unknown[], at: string): unknown {
  const need = (n: number) => {
    if (args.length !== n) throw execError(at, `wrong number of args for ${name}: want ${n} got ${args.length}`);
  };
  switch (name) {
    case 'json': {
      need(1);
      // encoding/json's Encoder: compact, HTML characters escaped, a newline at the end.
      return JSON.stringify(toJson(args[0]) ?? null).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`) + '\n';
    }
    case 'lower':
    case 'upper':
    case 'title': {
      need(1);
      if (typeof args[0] !== 'string') throw execError(at, `wrong type for value; expected string; got ${goType(args[0])}`);
      const s = args[0];
      if (name === 'lower') return s.toLowerCase();
      if (name === 'upper') return s.toUpperCase();
      return s.replace(/(^|[^\p{L}\p{N}'])(\p{L})/gu, (_m, pre: string, c: string) => pre + c.toUpperCase());
    }
    case 'len': {
      need(1);
      const v = args[0];
      if (typeof v === 'string') return Buffer.byteLength(v);
      if (v instanceof JsonNumber) return Buffer.byteLength(v.text);
      if (Array.isArray(v)) return v.length;
      if (isMap(v)) return Object.keys(v).length;
      throw execError(at, `error calling len: len of type ${goType(v)}`);
    }
    case 'index': {
      let v = args[0];
      for (const key of args.slice(1)) {
        if (Array.isArray(v)) {
          const i = key instanceof JsonNumber ? Number(key.text) : key;
          if (typeof i !== 'number' || !Number.isInteger(i)) throw execError(at, `error calling index: cannot index slice/array with type ${goType(key)}`);
          if (i < 0 || i >= v.length) throw execError(at, `error calling index: index out of range: ${i}`);
          v = v[i];
        } else if (isMap(v)) {
          if (typeof key !== 'string') throw execError(at, `error calling index: value has type ${goType(key)}; should be string`);
          v = key in v ? v[key] : null;
        } else throw execError(at, `error calling index: can't index item of type ${goType(v)}`);
      }
      return v;
    }
    case 'print':
      return args.map((a, i) => (i > 0 && typeof a !== 'string' && typeof args[i - 1] !== 'string' ? ' ' : '') + printValue(a, true)).join('');
    case 'println':
      return args.map((a) => printValue(a, true)).join(' ') + '\n';
    case 'printf': {
      const [format, ...rest] = args;
      if (typeof format !== 'string') throw execError(at, 'error calling printf: the format must be a string');
      let n = 0;
      return format.replace(/%([-+ #0]*\d*(?:\.\d+)?)([svdqtf%])/g, (m, _flags: string, verb: string) => {
        if (verb === '%') return '%';
        if (n >= rest.length) return `%!${verb}(MISSING)`;
        const a = rest[n++];
        if (verb === 'q') return JSON.stringify(printValue(a, true));
        if (verb === 'd' && !(typeof a === 'number' || a instanceof JsonNumber)) return `%!d(${goType(a)}=${printValue(a, true)})`;
        if (m.length > 2 && verb !== 's' && verb !== 'v') throw execError(at, `printf flags and widths are not supported by berthctl's go-template ("${m}")`);
        return printValue(a, true);
      });
    }
    case 'not':
      need(1);
      return !truth(args[0]);
    case 'and': {
      if (args.length === 0) throw execError(at, 'wrong number of args for and: want at least 1 got 0');
      for (const a of args) if (!truth(a)) return a;
      return args[args.length - 1];
    }
    case 'or': {
      if (args.length === 0) throw execError(at, 'wrong number of args for or: want at least 1 got 0');
      for (const a of args) if (truth(a)) return a;
      return args[args.length - 1];
    }
    case 'eq': {
      if (args.length < 2) throw execError(at, 'error calling eq: missing argument for comparison');
      return args.slice(1).some((b) => compare('eq', args[0], b, at) === 0);
    }
    case 'ne':
      need(2);
      return compare('ne', args[0], args[1], at) !== 0;
    case 'lt':
      need(2);
      return compare('lt', args[0], args[1], at) < 0;
    case 'le':
      need(2);
      return compare('le', args[0], args[1], at) <= 0;
    case 'gt':
      need(2);
      return compare('gt', args[0], args[1], at) > 0;
    case 'ge':
      need(2);
      return compare('ge', args[0], args[1], at) >= 0;
  }
  throw execError(at, `function "${name}" not defined`);
}
