/**
 * The browser page end to end, in a real browser: Debian's Chromium, headless, driven by playwright-core.
 * `npm run web`'s build and static server serve the page; opening it boots the default guest in a Worker;
 * the test types into the xterm.js terminal as a user would and reads the answers; saves a snapshot
 * (downloaded, and kept in the browser's storage); reloads the page and restores the snapshot from the
 * storage; restores a snapshot file made by the Node CLI (`x86vm run --save-state F --save-on REGEX`);
 * and checks that bad input is explained on the page. The booted page's screenshot is kept as an
 * artifact: test/artifacts/web-booted.png.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { nasm } from './helpers/asm';
import { ARTIFACTS, ROOT, screenText, startWebRig, transcript, waitOutput, waitState, type WebRig } from './helpers/web';

const BIN = join(ROOT, 'dist', 'x86vm.mjs');
const PROMPT = /x86vm:\/# /;

/** a Multiboot kernel: "HELLO VGA" (white on blue) on the text screen, then keyboard bytes from the i8042 to COM1 */
const VGA_KBD = `
bits 32
org 0x100000
header:
  dd 0x1BADB002, 0x00010000, -(0x1BADB002 + 0x00010000)
  dd header, header, 0, 0, start
start:
  mov edi, 0xb8000
  mov esi, msg
.c:
  lodsb
  test al, al
  jz .kbd
  mov ah, 0x1f
  stosw
  jmp .c
.kbd:
  in al, 0x64
  test al, 1
  jz .kbd
  in al, 0x60
  mov dx, 0x3f8
  out dx, al
  jmp .kbd
msg: db 'HELLO VGA', 0
`;

let rig: WebRig | null = null;
let dir = '';
let base = '';
let cliSnapshot = '';

beforeAll(async () => {
  expect(existsSync(join(ROOT, 'images', 'default', 'bzImage'))).toBe(true);
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'build.mjs')], { cwd: ROOT });
  rig = await startWebRig({
    prepare: (dist, tmp) => {
      writeFileSync(join(dist, 'vga.bin'), nasm(VGA_KBD));
      // a snapshot made by the Node CLI: the default guest saved at its first shell prompt
      cliSnapshot = join(tmp, 'cli.snap');
      execFileSync(process.execPath, [BIN, 'run', '--timeout', '400', '--serial', 'none', '--save-state', cliSnapshot, '--save-on', 'x86vm:/# '], {
        cwd: ROOT,
        stdio: 'pipe',
      });
      expect(statSync(cliSnapshot).size).toBeGreaterThan(100_000);
    },
  });
  dir = rig.dir;
  base = rig.base;
}, 600_000);

afterAll(async () => {
  await rig?.close();
});

/** types a command into the terminal as a user would and waits for `answer` in the output after it */
async function command(page: Page, text: string, answer: RegExp): Promise<string> {
  const from = (await transcript(page)).length;
  await page.click('#terminal');
  await page.keyboard.type(`${text}\n`, { delay: 10 });
  await waitOutput(page, answer, from, 60_000);
  await waitOutput(page, PROMPT, from, 60_000);
  return (await transcript(page)).slice(from);
}

describe('the browser page', () => {
  it('boots the default guest, answers typed commands, saves a snapshot, restores it after a reload, restores a CLI snapshot', async () => {
    const context = await rig!.browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    try {
      // ---- opening the page boots the default guest ----
      await page.goto(base);
      await waitState(page, 'running', /^default guest$/);
      await waitOutput(page, PROMPT);
      const uname = await command(page, 'uname -a', /Linux x86vm 6\.1\.\d+ .*i686 GNU\/Linux/);
      expect(uname).toMatch(/uname -a\r\nLinux x86vm 6\.1\.\d+ #1 .* i686 GNU\/Linux\r\n/);
      // the answer is on the screen, not only in the page's transcript
      await expect.poll(() => page.locator('#terminal .xterm-rows').innerText(), { timeout: 10_000 }).toMatch(/Linux x86vm 6\.1\.\d+ .*GNU\/Linux/);
      const statusLine = await page.locator('#status').innerText();
      expect(statusLine).toMatch(/running/i);
      expect(statusLine).toMatch(/default guest · \d+\.\d MIPS · guest time .* · 128 MiB RAM/);
      expect(await page.locator('#error').isHidden()).toBe(true);
      mkdirSync(ARTIFACTS, { recursive: true });
      const shot = join(ARTIFACTS, 'web-booted.png');
      await page.screenshot({ path: shot });
      expect([...readFileSync(shot).subarray(0, 4)]).toEqual([0x89, 0x50, 0x4e, 0x47]);

      // ---- pause and resume ----
      await page.click('#btn-pause');
      await waitState(page, 'paused');
      expect(await page.locator('#btn-pause').innerText()).toBe('Resume');
      const frozen = await page.evaluate(() => window.x86vm.status()!.instructions);
      await page.waitForTimeout(500);
      expect(await page.evaluate(() => window.x86vm.status()!.instructions)).toBe(frozen);
      await page.click('#btn-pause');
      await waitState(page, 'running');

      // ---- save a snapshot: downloaded, and listed in the browser's storage ----
      const [download] = await Promise.all([page.waitForEvent('download', { timeout: 120_000 }), page.click('#btn-save')]);
      const name = download.suggestedFilename();
      expect(name).toMatch(/^x86vm-\d{8}-\d{6}\.snap$/);
      const saved = join(dir, name);
      await download.saveAs(saved);
      const bytes = readFileSync(saved);
      expect(bytes.subarray(0, 8).toString('latin1')).toBe('X86VMSNP');
      expect(bytes.length).toBeGreaterThan(100_000);
      await expect.poll(() => page.locator('#snapshot-list tr').count(), { timeout: 30_000 }).toBe(1);
      const row = page.locator('#snapshot-list tr').first();
      expect(await row.locator('td.name').innerText()).toBe(name);
      expect(await row.locator('td.size').innerText()).toMatch(/^\d+(\.\d)? MiB$/);
      // the same file is a valid snapshot for the Node CLI
      const info = execFileSync(process.execPath, [BIN, 'snapshot', 'info', saved], { encoding: 'utf8' });
      expect(info).toMatch(/all checksums verified/);
      expect(info).toMatch(/memory: +128 MiB/);

      // ---- reload (without booting) and restore the snapshot from the browser's storage ----
      await page.goto(`${base}?boot=0`);
      await expect.poll(() => page.locator('#snapshot-list tr').count(), { timeout: 30_000 }).toBe(1);
      await page.waitForFunction(() => window.x86vm.status()?.state === 'idle', null, { timeout: 30_000 });
      await page.locator('#snapshot-list tr').first().locator('button.restore').click();
      await waitState(page, 'running', new RegExp(`^snapshot ${name.replace(/\./g, '\\.')}$`));
      const math = await command(page, 'echo $((6*7))', /\r\n42\r\n/);
      expect(math).toContain('echo $((6*7))');

      // ---- restore a snapshot file made by the Node CLI ----
      await page.setInputFiles('#file-snapshot', cliSnapshot);
      await waitState(page, 'running', /^snapshot cli\.snap$/);
      await command(page, 'echo cli-$((2+3))', /\r\ncli-5\r\n/);
      expect(await page.locator('#error').isHidden()).toBe(true);

      // ---- a file that is not a snapshot: said in words; the guest keeps running ----
      const junk = join(dir, 'bad.snap');
      writeFileSync(junk, 'this is not a snapshot\n');
      await page.setInputFiles('#file-snapshot', junk);
      await page.locator('#error').waitFor({ state: 'visible', timeout: 30_000 });
      expect(await page.locator('#error-text').innerText()).toBe("Cannot restore snapshot 'bad.snap': not an x86vm snapshot (wrong magic number)");
      await waitState(page, 'running', /^snapshot cli\.snap$/);
      await command(page, 'echo still-$((1+1))', /\r\nstill-2\r\n/);
      expect(pageErrors).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it('shows the VGA screen on the canvas and sends keys to the PS/2 keyboard when it has focus', async () => {
    const page = await rig!.browser.newPage();
    try {
      await page.goto(`${base}?kernel=vga.bin&vga=1&mem=8`);
      await waitState(page, 'running', /^vga\.bin$/);
      await page.locator('#screen').waitFor({ state: 'visible', timeout: 30_000 });
      // white on blue text cells drawn from the worker's frames
      const blue = () =>
        page.evaluate(() => {
          const c = document.getElementById('screen') as HTMLCanvasElement;
          const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
          let n = 0;
          for (let i = 0; i < d.length; i += 4) if (d[i + 2] > 100 && d[i] < 50) n++;
          return { n, w: c.width, h: c.height };
        });
      await expect.poll(async () => (await blue()).n, { timeout: 30_000 }).toBeGreaterThan(9 * 8 * 8);
      expect((await blue()).h).toBe(400);
      // the worker's text dump of the same screen
      expect((await screenText(page)).split('\n')[0]).toBe('HELLO VGA');
      await page.click('#screen');
      await page.keyboard.press('a');
      // the set-1 make code of A (0x1E) reached the guest through the i8042 and came back on COM1
      await waitOutput(page, /\x1e/, 0, 30_000);
    } finally {
      await page.close();
    }
  });

  it('explains bad input on the page: a kernel that is not there, a bad address', async () => {
    const page = await rig!.browser.newPage();
    try {
      await page.goto(`${base}?kernel=nowhere/bzImage`);
      await page.locator('#error').waitFor({ state: 'visible', timeout: 30_000 });
      expect(await page.locator('#error-text').innerText()).toMatch(/^Could not download kernel http:\/\/127\.0\.0\.1:\d+\/nowhere\/bzImage: not found \(HTTP 404\)$/);
      // the worker's status arrives asynchronously (slower on a loaded machine)
      await page.waitForFunction(() => window.x86vm.status()?.state === 'error', null, { timeout: 30_000 });
      expect(await page.locator('#terminal .xterm').isVisible()).toBe(true);

      await page.goto(`${base}?mem=lots`);
      await page.locator('#error').waitFor({ state: 'visible', timeout: 30_000 });
      expect(await page.locator('#error-text').innerText()).toMatch(/^Parameter 'mem': 'lots' is not a memory size/);
      await page.waitForFunction(() => window.x86vm.status()?.state === 'idle', null, { timeout: 30_000 });
      expect(await page.locator('#boot-panel').getAttribute('open')).not.toBeNull();
    } finally {
      await page.close();
    }
  });
});
