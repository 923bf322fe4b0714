/**
 * WWW-Authenticate parsing (RFC 7235), no I/O: several challenges in one header, quoted values holding
 * commas and escaped quotes, case-insensitive scheme and parameter names, token68 (`Negotiate abc==`).
 */

export interface Challenge {
  /** Lowercased: `bearer`, `basic`. */
  readonly scheme: string;
  /** Parameter names lowercased; values as sent (unquoted, unescaped). */
  readonly params: Readonly<Record<string, string>>;
  readonly token68?: string;
}

const TOKEN = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;
const TOKEN68 = /[A-Za-z0-9\-._~+/]/;

class Cursor {
  pos = 0;
  constructor(readonly s: string) {}
  get done(): boolean {
    return this.pos >= this.s.length;
  }
  peek(): string {
    return this.s[this.pos] ?? '';
  }
  skipSpace(): void {
    while (this.peek() === ' ' || this.peek() === '\t') this.pos++;
  }
  skipSeparators(): void {
    while (this.peek() === ' ' || this.peek() === '\t' || this.peek() === ',') this.pos++;
  }
  read(pattern: RegExp): string {
    const start = this.pos;
    while (!this.done && pattern.test(this.peek())) this.pos++;
    return this.s.slice(start, this.pos);
  }
  quoted(): string {
    let out = '';
    this.pos++; // opening quote
    while (!this.done) {
      const c = this.s[this.pos++]!;
      if (c === '"') return out;
      if (c === '\\' && !this.done) out += this.s[this.pos++];
      else out += c;
    }
    return out; // unterminated: take what there is
  }
}

/** All challenges in a WWW-Authenticate header value (or several values joined with commas). */
export function parseWWWAuthenticate(header: string | readonly string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  const text = typeof header === 'string' ? header : header.join(', ');
  const c = new Cursor(text);
  const out: Challenge[] = [];
  for (;;) {
    c.skipSeparators();
    if (c.done) return out;
    const scheme = c.read(TOKEN);
    if (scheme === '') {
      c.pos++; // garbage: skip a character and carry on
      continue;
    }
    out.push(readChallengeBody(c, scheme.toLowerCase()));
  }
}

function readChallengeBody(c: Cursor, scheme: string): Challenge {
  const params: Record<string, string> = {};
  c.skipSpace();
  const t68 = tryToken68(c);
  if (t68 !== undefined) return { scheme, params, token68: t68 };
  for (;;) {
    const save = c.pos;
    c.skipSeparators();
    const name = c.read(TOKEN);
    c.skipSpace();
    if (name === '' || c.peek() !== '=') {
      c.pos = save; // the next challenge's scheme (or the end)
      return { scheme, params };
    }
    c.pos++;
    c.skipSpace();
    params[name.toLowerCase()] = c.peek() === '"' ? c.quoted() : c.read(/[^,\s]/);
  }
}

/** `Scheme token68`: the token68 must end the challenge (end of header or a comma) and be padded or last. */
function tryToken68(c: Cursor): string | undefined {
  const start = c.pos;
  const body = c.read(TOKEN68);
  if (body === '') return undefined;
  const pads = c.read(/=/);
  c.skipSpace();
  if (c.done || (pads !== '' && c.peek() === ',')) return body + pads;
  c.pos = start;
  return undefined;
}
