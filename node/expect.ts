/**
 * A scripted console session for CI runs: a list of steps "expect REGEX" / "send TEXT" played against the
 * guest's serial output. Each expect waits until the output (since the previous match) matches; the sends
 * that follow it are typed into the serial port as soon as it does.
 */

export type ScriptStep = { kind: 'expect'; re: RegExp; source: string } | { kind: 'send'; data: string };

export class ScriptError extends Error {}

/** turns C-style escapes (\n \r \t \\ \e \xNN \0) into characters */
export function unescapeText(text: string): string {
  return text.replace(/\\(x[0-9a-fA-F]{2}|[nrte0\\])/g, (_, e: string) => {
    switch (e[0]) {
      case 'n': return '\n';
      case 'r': return '\r';
      case 't': return '\t';
      case 'e': return '\x1b';
      case '0': return '\0';
      case '\\': return '\\';
      default: return String.fromCharCode(parseInt(e.slice(1), 16));
    }
  });
}

export function compileExpect(source: string, where: string): RegExp {
  try {
    return new RegExp(source, 'm');
  } catch (e) {
    throw new ScriptError(`${where}: not a valid regular expression '${source}': ${(e as Error).message}`);
  }
}

/** parses a script file: lines "expect REGEX", "send TEXT" (escapes allowed), blank lines and # comments */
export function parseScript(text: string, file: string): ScriptStep[] {
  const steps: ScriptStep[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    const where = `${file}:${i + 1}`;
    const trimmed = line.replace(/^\s+/, '');
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const m = /^(expect|send)\s(.*)$/.exec(trimmed);
    if (!m) throw new ScriptError(`${where}: expected 'expect REGEX' or 'send TEXT', got '${trimmed}'`);
    if (m[1] === 'expect') steps.push({ kind: 'expect', re: compileExpect(m[2], where), source: m[2] });
    else steps.push({ kind: 'send', data: unescapeText(m[2]) });
  });
  return steps;
}

const KEEP = 64 * 1024;

export class ConsoleScript {
  private readonly steps: ScriptStep[];
  private next = 0;
  private buffer = '';
  private readonly send: (bytes: Uint8Array) => void;

  constructor(steps: ScriptStep[], send: (bytes: Uint8Array) => void) {
    this.steps = steps;
    this.send = send;
  }

  /** plays the sends at the start of the script (before any expect) */
  start(): void {
    this.advance();
  }

  /** the guest's serial output */
  output(bytes: Uint8Array): void {
    if (this.next >= this.steps.length) return;
    let s = '';
    for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    this.buffer += s;
    if (this.buffer.length > KEEP * 2) this.buffer = this.buffer.slice(-KEEP);
    this.advance();
  }

  private advance(): void {
    while (this.next < this.steps.length) {
      const step = this.steps[this.next];
      if (step.kind === 'send') {
        const b = new Uint8Array(step.data.length);
        for (let i = 0; i < b.length; i++) b[i] = step.data.charCodeAt(i) & 0xff;
        this.send(b);
        this.next++;
        continue;
      }
      const m = step.re.exec(this.buffer);
      if (!m) return;
      this.buffer = this.buffer.slice(m.index + m[0].length);
      this.next++;
    }
  }

  /** the expect the script is still waiting for, if any */
  get pending(): string | undefined {
    for (let i = this.next; i < this.steps.length; i++) {
      const s = this.steps[i];
      if (s.kind === 'expect') return s.source;
    }
    return undefined;
  }

  get done(): boolean {
    return this.next >= this.steps.length;
  }
}
