// YAML as crictl prints it: sigs.k8s.io/yaml's JSONToYAML, that is go-yaml v2 marshalling
// the JSON document. Ported rules: keys in go-yaml's order (letters before other runes,
// digit runs compared as numbers), sequences under a key not indented, a string quoted
// "…" when plain it would read as another type (numbers, bools, null, timestamps) and '…'
// when plain is not allowed, multi-line strings as literal blocks, long values folded at
// spaces past column 80, empty maps and lists as {} and [].
type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const BEST_WIDTH = 80;
const BEST_INDENT = 2;

const isBreak = (c: string | undefined) => c === '\n' || c === '\r' || c === '\x85' || c === '\u2028' || c === '\u2029';
const isSpace = (c: string | undefined) => c === ' ';
const isBlank = (c: string | undefined) => c === ' ' || c === '\t';
function isPrintable(c: string): boolean {
  const v = c.codePointAt(0)!;
  return v === 0x0a || (v >= 0x20 && v <= 0x7e) || v === 0x85 || (v >= 0xa0 && v <= 0xd7ff) || (v >= 0xe000 && v <= 0xfffd && v !== 0xfeff) || (v >= 0x10000 && v <= 0x10ffff);
}

const RESOLVE_MAP = new Set(['y', 'Y', 'yes', 'Yes', 'YES', 'true', 'True', 'TRUE', 'on', 'On', 'ON', 'n', 'N', 'no', 'No', 'NO', 'false', 'False', 'FALSE', 'off', 'Off', 'OFF', '', '~', 'null', 'Null', 'NULL', '.nan', '.NaN', '.NAN', '.inf', '.Inf', '.INF', '+.inf', '+.Inf', '+.INF', '-.inf', '-.Inf', '-.INF', '<<']);
const YAML_STYLE_FLOAT = /^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$/;
const GO_INT = /^[-+]?(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)$/;
const TIMESTAMP = /^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt][0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(?:\.[0-9]+)?(?:Z|[+-][0-9]{2}:[0-9]{2})| [0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(?:\.[0-9]+)?)?$/;
const BASE60_FLOAT = /^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$/;

/** go-yaml v2's resolve(): would this text, unquoted, read back as something other than a string? */
function resolvesToNonString(s: string): boolean {
  const first = s[0];
  const hint = s === '' ? 'N' : first === '+' || first === '-' ? 'S' : /[0-9]/.test(first!) ? 'D' : 'yYnNtTfFoO~'.includes(first!) ? 'M' : first === '.' ? '.' : '';
  if (hint === '') return false;
  if (RESOLVE_MAP.has(s)) return true;
  if (hint === '.') return /^\.[0-9]+(?:[eE][-+]?[0-9]+)?$/.test(s);
  if (hint === 'D' || hint === 'S') {
    if (TIMESTAMP.test(s)) return true;
    const plain = s.replaceAll('_', '');
    return GO_INT.test(plain) || YAML_STYLE_FLOAT.test(plain) || /^-0[bB][01]+$/.test(plain);
  }
  return false;
}

interface Analysis {
  multiline: boolean;
  blockPlainAllowed: boolean;
  singleQuotedAllowed: boolean;
  blockAllowed: boolean;
}

/** libyaml's yaml_emitter_analyze_scalar (block context only). */
function analyze(value: string): Analysis {
  if (value.length === 0) return { multiline: false, blockPlainAllowed: true, singleQuotedAllowed: true, blockAllowed: false };
  const chars = [...value];
  let blockIndicators = value.startsWith('---') || value.startsWith('...');
  let lineBreaks = false;
  let special = false;
  let leadingSpace = false;
  let leadingBreak = false;
  let trailingSpace = false;
  let trailingBreak = false;
  let breakSpace = false;
  let spaceBreak = false;
  let precededByWhitespace = true;
  let previousSpace = false;
  let previousBreak = false;
  chars.forEach((c, i) => {
    const next = chars[i + 1];
    const followedByWhitespace = next === undefined || isBlank(next) || isBreak(next);
    if (i === 0) {
      if ('#,[]{}&*!|>\'"%@`'.includes(c)) blockIndicators = true;
      else if ((c === '?' || c === ':' || c === '-') && followedByWhitespace) blockIndicators = true;
    } else if (c === ':' && followedByWhitespace) blockIndicators = true;
    else if (c === '#' && precededByWhitespace) blockIndicators = true;
    if (!isPrintable(c)) special = true;
    if (isSpace(c)) {
      if (i === 0) leadingSpace = true;
      if (i === chars.length - 1) trailingSpace = true;
      if (previousBreak) breakSpace = true;
      previousSpace = true;
      previousBreak = false;
    } else if (isBreak(c)) {
      lineBreaks = true;
      if (i === 0) leadingBreak = true;
      if (i === chars.length - 1) trailingBreak = true;
      if (previousSpace) spaceBreak = true;
      previousSpace = false;
      previousBreak = true;
    } else {
      previousSpace = false;
      previousBreak = false;
    }
    precededByWhitespace = isBlank(c) || isBreak(c);
  });
  const a: Analysis = { multiline: lineBreaks, blockPlainAllowed: true, singleQuotedAllowed: true, blockAllowed: true };
  if (leadingSpace || leadingBreak || trailingSpace || trailingBreak) a.blockPlainAllowed = false;
  if (trailingSpace) a.blockAllowed = false;
  if (breakSpace) a.blockPlainAllowed = a.singleQuotedAllowed = false;
  if (spaceBreak || special) a.blockPlainAllowed = a.singleQuotedAllowed = a.blockAllowed = false;
  if (lineBreaks || blockIndicators) a.blockPlainAllowed = false;
  return a;
}

/** go-yaml v2's keyList.Less for string keys. */
export function goYamlKeyLess(a: string, b: string): boolean {
  const ar = [...a];
  const br = [...b];
  const letter = (c: string) => /\p{L}/u.test(c);
  const digit = (c: string | undefined) => c !== undefined && /\p{Nd}/u.test(c);
  for (let i = 0; i < ar.length && i < br.length; i++) {
    if (ar[i] === br[i]) continue;
    const al = letter(ar[i]!);
    const bl = letter(br[i]!);
    if (al && bl) return ar[i]!.codePointAt(0)! < br[i]!.codePointAt(0)!;
    if (al || bl) return bl;
    let an = 0n;
    let bn = 0n;
    if (ar[i] === '0' || br[i] === '0') {
      for (let j = i - 1; j >= 0 && digit(ar[j]); j--) {
        if (ar[j] !== '0') {
          an = 1n;
          bn = 1n;
          break;
        }
      }
    }
    let ai = i;
    let bi = i;
    for (; ai < ar.length && digit(ar[ai]); ai++) an = an * 10n + BigInt(ar[ai]!.charCodeAt(0) - 48);
    for (; bi < br.length && digit(br[bi]); bi++) bn = bn * 10n + BigInt(br[bi]!.charCodeAt(0) - 48);
    if (an !== bn) return an < bn;
    if (ai !== bi) return ai < bi;
    return ar[i]!.codePointAt(0)! < br[i]!.codePointAt(0)!;
  }
  return ar.length < br.length;
}

/** strconv.FormatFloat(f, 'g', -1, 64), as go-yaml writes floats. */
function goFloat(n: number): string {
  if (Number.isInteger(n) && Math.abs(n) < 1e21) return String(n);
  const exp = Math.floor(Math.log10(Math.abs(n)));
  if (exp < -4 || exp >= 21) {
    const [mant, e] = n.toExponential().split('e') as [string, string];
    const sign = e.startsWith('-') ? '-' : '+';
    const digits = e.replace(/^[-+]/, '');
    return `${mant}e${sign}${digits.padStart(2, '0')}`;
  }
  return String(n);
}

class Emitter {
  out = '';
  column = 0;
  whitespace = true;
  indention = true;

  write(text: string): void {
    this.out += text;
    this.column += [...text].length;
  }

  lineBreak(): void {
    this.out += '\n';
    this.column = 0;
    this.whitespace = true;
    this.indention = true;
  }

  indent(indent: number): void {
    const at = Math.max(indent, 0);
    if (!this.indention || this.column > at || (this.column === at && !this.whitespace)) this.lineBreak();
    while (this.column < at) this.write(' ');
    this.whitespace = true;
    this.indention = true;
  }

  indicator(text: string, needWhitespace: boolean, isWhitespace: boolean, isIndention: boolean): void {
    if (needWhitespace && !this.whitespace) this.write(' ');
    this.write(text);
    this.whitespace = isWhitespace;
    this.indention = this.indention && isIndention;
  }

  /** A scalar; indent is where continuation lines of a value start. */
  scalar(value: Json, indent: number, simpleKey: boolean): void {
    if (value === null) return this.plain('null', indent, false);
    if (typeof value === 'boolean') return this.plain(String(value), indent, false);
    if (typeof value === 'number') return this.plain(goFloat(value), indent, false);
    const s = value as string;
    const canUsePlain = !resolvesToNonString(s) && !BASE60_FLOAT.test(s);
    let style: 'plain' | 'single' | 'double' | 'literal' = s.includes('\n') ? 'literal' : canUsePlain ? 'plain' : 'double';
    const a = analyze(s);
    if (simpleKey && a.multiline) style = 'double';
    if (style === 'plain' && (!a.blockPlainAllowed || (s.length === 0 && simpleKey))) style = 'single';
    if (style === 'single' && !a.singleQuotedAllowed) style = 'double';
    if (style === 'literal' && (!a.blockAllowed || simpleKey)) style = 'double';
    const allowBreaks = !simpleKey;
    if (style === 'plain') this.plain(s, indent, allowBreaks);
    else if (style === 'single') this.singleQuoted(s, indent, allowBreaks);
    else if (style === 'double') this.doubleQuoted(s, indent, allowBreaks);
    else this.literal(s, indent);
  }

  plain(value: string, indent: number, allowBreaks: boolean): void {
    if (!this.whitespace) this.write(' ');
    this.foldedChars([...value], indent, allowBreaks, () => true, (c) => c);
    this.whitespace = false;
    this.indention = false;
  }

  singleQuoted(value: string, indent: number, allowBreaks: boolean): void {
    this.indicator("'", true, false, false);
    const chars = [...value];
    // A quoted scalar never breaks at its first or last character.
    this.foldedChars(chars, indent, allowBreaks, (i) => i > 0 && i < chars.length - 1, (c) => (c === "'" ? "''" : c));
    this.indicator("'", false, false, false);
    this.whitespace = false;
    this.indention = false;
  }

  /** The body of a plain or single-quoted scalar: spaces fold past the best width, line breaks double. */
  private foldedChars(chars: string[], indent: number, allowBreaks: boolean, mayBreakAt: (i: number) => boolean, escape: (c: string) => string): void {
    let spaces = false;
    let breaks = false;
    for (let i = 0; i < chars.length; i++) {
      const c = chars[i]!;
      if (isSpace(c)) {
        if (allowBreaks && !spaces && this.column > BEST_WIDTH && mayBreakAt(i) && !isSpace(chars[i + 1])) this.indent(indent);
        else this.write(c);
        spaces = true;
      } else if (isBreak(c)) {
        if (!breaks && c === '\n') this.lineBreak();
        this.lineBreak();
        breaks = true;
      } else {
        if (breaks) this.indent(indent);
        this.write(escape(c));
        this.indention = false;
        spaces = false;
        breaks = false;
      }
    }
  }

  doubleQuoted(value: string, indent: number, allowBreaks: boolean): void {
    this.indicator('"', true, false, false);
    const chars = [...value];
    let spaces = false;
    const escapes: Record<number, string> = { 0: '0', 7: 'a', 8: 'b', 9: 't', 10: 'n', 11: 'v', 12: 'f', 13: 'r', 0x1b: 'e', 0x22: '"', 0x5c: '\\', 0x85: 'N', 0xa0: '_', 0x2028: 'L', 0x2029: 'P' };
    for (let i = 0; i < chars.length; i++) {
      const c = chars[i]!;
      const v = c.codePointAt(0)!;
      if (!isPrintable(c) || v === 0xfeff || isBreak(c) || c === '"' || c === '\\') {
        const short = escapes[v];
        if (short !== undefined) this.write(`\\${short}`);
        else if (v <= 0xff) this.write(`\\x${v.toString(16).toUpperCase().padStart(2, '0')}`);
        else if (v <= 0xffff) this.write(`\\u${v.toString(16).toUpperCase().padStart(4, '0')}`);
        else this.write(`\\U${v.toString(16).toUpperCase().padStart(8, '0')}`);
        spaces = false;
      } else if (isSpace(c)) {
        if (allowBreaks && !spaces && this.column > BEST_WIDTH && i > 0 && i < chars.length - 1) {
          this.indent(indent);
          if (isSpace(chars[i + 1])) this.write('\\');
        } else this.write(c);
        spaces = true;
      } else {
        this.write(c);
        spaces = false;
      }
    }
    this.indicator('"', false, false, false);
    this.whitespace = false;
    this.indention = false;
  }

  literal(value: string, indent: number): void {
    this.indicator('|', true, false, false);
    const chars = [...value];
    if (isSpace(chars[0]) || isBreak(chars[0])) this.indicator(String(BEST_INDENT), false, false, false);
    const last = chars.length - 1;
    let chomp = '';
    if (!isBreak(chars[last])) chomp = '-';
    else if (last === 0 || isBreak(chars[last - 1])) chomp = '+';
    if (chomp) this.indicator(chomp, false, false, false);
    this.lineBreak();
    let breaks = true;
    for (const c of chars) {
      if (isBreak(c)) {
        this.lineBreak();
        breaks = true;
      } else {
        if (breaks) this.indent(indent);
        this.write(c);
        this.indention = false;
        breaks = false;
      }
    }
  }

  /** A node at block indent `indent` (the column of its keys or dashes). */
  node(value: Json, indent: number, inMapping: boolean): void {
    if (Array.isArray(value)) {
      if (value.length === 0) return this.emptyFlow('[]');
      // A sequence that is a mapping's value is not indented further ("indentless").
      const at = inMapping && !this.indention ? indent : indent + BEST_INDENT;
      for (const item of value) {
        this.indent(at);
        this.indicator('-', true, false, true);
        this.node(item, at, false);
      }
      return;
    }
    if (value !== null && typeof value === 'object') {
      const keys = Object.keys(value).sort((a, b) => (goYamlKeyLess(a, b) ? -1 : goYamlKeyLess(b, a) ? 1 : 0));
      if (keys.length === 0) return this.emptyFlow('{}');
      const at = indent + BEST_INDENT;
      for (const key of keys) {
        this.indent(at);
        this.scalar(key, at + BEST_INDENT, true);
        this.indicator(':', false, false, false);
        this.node(value[key]!, at, true);
      }
      return;
    }
    this.scalar(value, indent + BEST_INDENT, false);
  }

  emptyFlow(text: string): void {
    this.indicator(text[0]!, true, true, false);
    this.indicator(text[1]!, false, false, false);
  }
}

/** The document as sigs.k8s.io/yaml.JSONToYAML writes it (ending in one newline). */
export function goYaml(value: unknown): string {
  const emitter = new Emitter();
  emitter.node(JSON.parse(JSON.stringify(value)) as Json, -BEST_INDENT, false);
  emitter.indent(0);
  return emitter.out;
}
