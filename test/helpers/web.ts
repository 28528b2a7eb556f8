/**
 * Shared set-up for the browser end-to-end tests (test/web.test.ts, test/web-bios.test.ts): `npm run web`'s
 * build into a temporary folder, its static server on a free port, Debian's Chromium through
 * playwright-core, and what the tests ask of the page (window.x86vm: the serial transcript, the status,
 * the VGA text screen) and how they type (into the terminal, or on the canvas as PS/2 keys).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

export const ROOT = resolve(__dirname, '..', '..');
export const CHROMIUM = '/usr/bin/chromium';
export const ARTIFACTS = join(ROOT, 'test', 'artifacts');

export interface WebRig {
  /** the temporary folder (the page is built into dir/dist) */
  dir: string;
  /** the page's address, ending in / */
  base: string;
  browser: Browser;
  close(): Promise<void>;
}

/**
 * Builds the page into a temporary folder (`extraArgs`: more scripts/web.mjs options, e.g. --iso),
 * lets `prepare` add files to it, serves it and launches Chromium.
 */
export async function startWebRig(options: { extraArgs?: string[]; prepare?: (dist: string, dir: string) => void | Promise<void> } = {}): Promise<WebRig> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium`);
  const dir = mkdtempSync(join(tmpdir(), 'x86vm-webtest-'));
  let server: ChildProcess | null = null;
  let browser: Browser | null = null;
  try {
    const dist = join(dir, 'dist');
    execFileSync(process.execPath, [join(ROOT, 'scripts', 'web.mjs'), '--build-only', '--out', dist, ...(options.extraArgs ?? [])], { cwd: ROOT, stdio: 'pipe' });
    await options.prepare?.(dist, dir);
    const child = spawn(process.execPath, [join(ROOT, 'scripts', 'web.mjs'), '--no-build', '--out', dist, '--port', '0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    server = child;
    const base = await new Promise<string>((resolvePromise, reject) => {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /http:\/\/127\.0\.0\.1:\d+\//.exec(out);
        if (m) resolvePromise(m[0]);
      });
      child.on('exit', (code) => reject(new Error(`the web server exited with ${code}`)));
    });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    const b = browser;
    return {
      dir,
      base,
      browser: b,
      async close() {
        await b.close().catch(() => undefined);
        child.kill();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await browser?.close().catch(() => undefined);
    server?.kill();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

/** the serial output the page has received (window.x86vm.transcript) */
export const transcript = (page: Page): Promise<string> => page.evaluate(() => window.x86vm.transcript());

/** the guest's VGA text screen as the worker dumps it (window.x86vm.screenText), rows joined by newlines */
export async function screenText(page: Page): Promise<string> {
  const rows = await page.evaluate(() => window.x86vm.screenText());
  return rows ? rows.join('\n') : '';
}

/** waits until the transcript, from `from` characters on, matches `re` */
export async function waitOutput(page: Page, re: RegExp, from = 0, timeout = 300_000): Promise<void> {
  try {
    await page.waitForFunction(
      ([src, flags, at]) => new RegExp(src, flags).test(window.x86vm.transcript().slice(at)),
      [re.source, re.flags, from] as const,
      { timeout, polling: 250 },
    );
  } catch (e) {
    throw new Error(`the page never showed ${re}: ${(e as Error).message}\n--- serial output ends with:\n${(await transcript(page)).slice(-1500)}`);
  }
}

/**
 * Polls the VGA text screen until it matches `re` (every `intervalMs`); returns the screen that
 * matched. Fails with the last screen seen.
 */
export async function waitScreen(page: Page, re: RegExp, timeout = 300_000, intervalMs = 150): Promise<string> {
  const t0 = Date.now();
  let last = '';
  for (;;) {
    last = await screenText(page);
    if (re.test(last)) return last;
    if (Date.now() - t0 > timeout) throw new Error(`the screen never showed ${re} in ${timeout / 1000} s; it shows:\n${last}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** waits for the worker's status to be `state` (with a label matching `label`); fails saying what it is */
export async function waitState(page: Page, state: string, label?: RegExp, timeout = 120_000): Promise<void> {
  try {
    await page.waitForFunction(
      ([s, l]) => {
        const st = window.x86vm.status();
        return !!st && st.state === s && (l === null || new RegExp(l).test(st.label));
      },
      [state, label ? label.source : null] as const,
      { timeout, polling: 100 },
    );
  } catch (e) {
    const st = await page.evaluate(() => window.x86vm?.status()).catch(() => null);
    const error = await page.locator('#error-text').innerText().catch(() => '');
    throw new Error(
      `the page never reached state ${state}${label ? ` with label ${label}` : ''}: ${(e as Error).message}\n` +
        `status: ${JSON.stringify(st)}\nerror shown: ${JSON.stringify(error)}`,
    );
  }
}

/** a character as the Playwright key press a US keyboard makes it with: "KeyE", "Shift+Digit4" */
const SHIFTED: Record<string, string> = {
  '!': 'Digit1', '@': 'Digit2', '#': 'Digit3', $: 'Digit4', '%': 'Digit5', '^': 'Digit6', '&': 'Digit7', '*': 'Digit8',
  '(': 'Digit9', ')': 'Digit0', _: 'Minus', '+': 'Equal', '{': 'BracketLeft', '}': 'BracketRight', '|': 'Backslash',
  ':': 'Semicolon', '"': 'Quote', '~': 'Backquote', '<': 'Comma', '>': 'Period', '?': 'Slash',
};
const PLAIN: Record<string, string> = {
  ' ': 'Space', '\n': 'Enter', '-': 'Minus', '=': 'Equal', '[': 'BracketLeft', ']': 'BracketRight', '\\': 'Backslash',
  ';': 'Semicolon', "'": 'Quote', '`': 'Backquote', ',': 'Comma', '.': 'Period', '/': 'Slash',
};

export function keyFor(ch: string): string {
  if (/^[a-z]$/.test(ch)) return `Key${ch.toUpperCase()}`;
  if (/^[A-Z]$/.test(ch)) return `Shift+Key${ch}`;
  if (/^[0-9]$/.test(ch)) return `Digit${ch}`;
  if (PLAIN[ch]) return PLAIN[ch];
  if (SHIFTED[ch]) return `Shift+${SHIFTED[ch]}`;
  throw new Error(`no US-keyboard key for ${JSON.stringify(ch)}`);
}

/**
 * Types `text` on the focused element key by key, as physical keys (KeyboardEvent.code, with Shift held
 * for shifted characters): what the canvas passes to the guest's PS/2 keyboard.
 */
export async function typeKeys(page: Page, text: string, delayMs = 25): Promise<void> {
  for (const ch of text) await page.keyboard.press(keyFor(ch), { delay: delayMs });
}
