/**
 * The browser page boots through SeaBIOS (issue 7's last point, on issue 6's page), in Debian's headless
 * Chromium: `npm run web -- --iso` puts Debian's bios.bin and vgabios-stdvga.bin beside the page and
 * builds the bootable CD (images/build-bootiso.sh: ISOLINUX + the default guest, append "console=ttyS0
 * console=tty0"); `?bios=1&cdrom=boot.iso` boots it, the ISO read lazily by HTTP range requests.
 *
 * The canvas shows, in turn, SeaBIOS's screen, the ISOLINUX banner, and Linux's VGA console — read through
 * the worker's text dump of the VGA (window.x86vm.screenText) and checked against the canvas's pixels.
 * The default guest's /init runs a shell on tty1 when the kernel has the VGA console (images/initramfs/
 * init): keys typed on the focused canvas go to the PS/2 keyboard, Linux's atkbd driver turns them into
 * tty1's input, and the shell's answer appears on the screen. That those keys did not come through the
 * serial console is checked too (the serial transcript never shows the command). The page with the
 * answer on it is kept as test/artifacts/web-bios.png.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { ARTIFACTS, ROOT, screenText, startWebRig, transcript, typeKeys, waitScreen, waitState, type WebRig } from './helpers/web';

const BIOS = '/usr/share/seabios/bios.bin';
const VGABIOS = '/usr/share/seabios/vgabios-stdvga.bin';
const ISOLINUX_BANNER = /ISOLINUX 6\.04 \d+ .*Copyright \(C\) 1994-2015 H\. Peter Anvin et al/;
/** the shell's prompt on the VGA console, at the end of a row (the cursor waits after it) */
const SCREEN_PROMPT = /^x86vm:\/# ?$/m;

let rig: WebRig | null = null;

beforeAll(async () => {
  for (const f of [BIOS, VGABIOS, join(ROOT, 'images/default/bzImage'), join(ROOT, 'images/default/initramfs.cpio.gz')]) {
    expect(existsSync(f), `${f} is missing`).toBe(true);
  }
  rig = await startWebRig({ extraArgs: ['--iso'] });
  const dist = join(rig.dir, 'dist');
  // the SeaBIOS files are copies of the installed package's; the CD is beside them
  for (const [src, name] of [
    [BIOS, 'bios.bin'],
    [VGABIOS, 'vgabios-stdvga.bin'],
  ]) {
    expect(readFileSync(join(dist, name)).equals(readFileSync(src)), name).toBe(true);
  }
  expect(statSync(join(dist, 'boot.iso')).size).toBeGreaterThan(1 << 20);
}, 600_000);

afterAll(async () => {
  await rig?.close();
});

/** the canvas's pixels that are not black, and its size */
function canvasLit(page: Page): Promise<{ lit: number; w: number; h: number }> {
  return page.evaluate(() => {
    const c = document.getElementById('screen') as HTMLCanvasElement;
    const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
    let lit = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] > 96) lit++;
    return { lit, w: c.width, h: c.height };
  });
}

/**
 * For each text row of the canvas (height/rows pixels), whether it has lit pixels: compared with the
 * text dump's rows, it shows the canvas draws the screen the dump reads.
 */
function canvasRows(page: Page, rows: number): Promise<boolean[]> {
  return page.evaluate((n) => {
    const c = document.getElementById('screen') as HTMLCanvasElement;
    const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
    const rowH = c.height / n;
    const out: boolean[] = [];
    for (let r = 0; r < n; r++) {
      let lit = false;
      for (let y = r * rowH; y < (r + 1) * rowH && !lit; y++) {
        for (let x = 0; x < c.width; x++) {
          const i = (y * c.width + x) * 4;
          if (d[i] + d[i + 1] + d[i + 2] > 96) {
            lit = true;
            break;
          }
        }
      }
      out.push(lit);
    }
    return out;
  }, rows);
}

describe('the browser page with SeaBIOS', () => {
  it('boots the CD through SeaBIOS: the canvas shows the BIOS screen, ISOLINUX, then the Linux console; keys typed on the canvas reach the shell on tty1', async () => {
    const page = await rig!.browser.newPage({ viewport: { width: 1280, height: 900 } });
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    try {
      await page.goto(`${rig!.base}?bios=1&cdrom=boot.iso`);
      await waitState(page, 'running', /^SeaBIOS: boot\.iso$/);
      await page.locator('#screen').waitFor({ state: 'visible', timeout: 60_000 });

      // ---- SeaBIOS's screen, drawn by its VGA BIOS: in the text dump and on the canvas ----
      const bios = await waitScreen(page, /SeaBIOS \(version 1\.16/, 300_000, 100);
      expect(bios).not.toMatch(/Linux version/);
      await expect.poll(async () => (await canvasLit(page)).lit, { timeout: 30_000 }).toBeGreaterThan(500);
      const size = await canvasLit(page);
      expect([size.w, size.h]).toEqual([720, 400]); // 80x25 text, 9x16 cells

      // ---- ISOLINUX: its banner and its say line, then it loads the kernel from the CD ----
      const loader = await waitScreen(page, ISOLINUX_BANNER, 300_000, 100);
      expect(loader).toMatch(/Booting from DVD\/CD/);
      await waitScreen(page, /x86vm CD boot: loading \/boot\/bzImage/, 120_000, 100);

      // ---- Linux's VGA console (console=tty0), then the shell on tty1 ----
      await waitScreen(page, /Run \/init as init process|Linux version 6\.1\./, 600_000);
      const booted = await waitScreen(page, SCREEN_PROMPT, 300_000);
      expect(booted).not.toMatch(/SeaBIOS \(version/); // the kernel's console has taken the screen over
      // the serial console has its own shell (console=ttyS0): the guest did boot from the CD's files
      expect(await transcript(page)).toMatch(ISOLINUX_BANNER);

      // ---- keys on the canvas: the PS/2 keyboard, Linux's atkbd, tty1's shell ----
      await page.click('#screen');
      await typeKeys(page, 'echo $((6*7))\n');
      // (a late kernel message may come between the command and its answer)
      await waitScreen(page, /^x86vm:\/# echo \$\(\(6\*7\)\)\n(?:.*\n)*?42$/m, 120_000);
      await waitScreen(page, SCREEN_PROMPT, 60_000);
      await typeKeys(page, 'uname -m\n');
      await waitScreen(page, /^x86vm:\/# uname -m\n(?:.*\n)*?i686$/m, 120_000);
      await waitScreen(page, SCREEN_PROMPT, 60_000);
      // they went to the VGA console's shell, not through the serial one
      const serial = await transcript(page);
      expect(serial).not.toContain('echo $((6*7))');
      expect(serial).not.toContain('uname -m');

      // the canvas draws what the text dump reads: a row has lit pixels exactly when it holds text
      // (the screen stands still at the prompt)
      const expectRows = async (): Promise<string> => {
        const text = await page.evaluate(() => window.x86vm.screenText());
        const rows = await canvasRows(page, 25);
        return text!.map((t, i) => (t.trim() !== '') === rows[i] ? '' : `row ${i} ${JSON.stringify(t)} lit=${rows[i]}`).join('');
      };
      await expect.poll(expectRows, { timeout: 10_000 }).toBe('');
      expect(await screenText(page)).toMatch(/^42$/m);

      mkdirSync(ARTIFACTS, { recursive: true });
      const shot = join(ARTIFACTS, 'web-bios.png');
      await page.screenshot({ path: shot, fullPage: true });
      expect([...readFileSync(shot).subarray(0, 4)]).toEqual([0x89, 0x50, 0x4e, 0x47]);
      expect(await page.locator('#error').isHidden()).toBe(true);
      expect(pageErrors).toEqual([]);
    } finally {
      await page.close();
    }
  }, 1_500_000);

  it('the "What to boot" controls choose SeaBIOS with a CD and a boot order', async () => {
    const page = await rig!.browser.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    try {
      // the address fills the controls without booting
      await page.goto(`${rig!.base}?bios=1&cdrom=boot.iso&bootorder=dc&boot=0`);
      await page.waitForFunction(() => window.x86vm.status()?.state === 'idle', null, { timeout: 30_000 });
      expect(await page.locator('#boot-panel').getAttribute('open')).not.toBeNull();
      const form = page.locator('#boot-form');
      expect(await form.locator('input[name=seabios]').isChecked()).toBe(true);
      expect(await form.locator('input[name=bios]').inputValue()).toBe('');
      expect(await form.locator('input[name=cdrom]').inputValue()).toBe('boot.iso');
      expect(await form.locator('input[name=disk]').inputValue()).toBe('');
      expect(await form.locator('input[name=bootorder]').inputValue()).toBe('dc');

      // SeaBIOS and a firmware URL together: said in words, nothing boots
      await form.locator('input[name=bios]').fill('other.bin');
      await form.locator('button[type=submit]').click();
      await page.locator('#error').waitFor({ state: 'visible', timeout: 30_000 });
      expect(await page.locator('#error-text').innerText()).toBe('Choose SeaBIOS or a firmware image of your own, not both');
      expect(await page.evaluate(() => window.x86vm.status()?.state)).toBe('idle');

      await form.locator('input[name=bios]').fill('');
      await form.locator('button[type=submit]').click();
      await waitState(page, 'running', /^SeaBIOS: boot\.iso$/);
      const s = await waitScreen(page, /x86vm CD boot: loading \/boot\/bzImage/, 300_000, 100);
      expect(s).toMatch(/SeaBIOS \(version 1\.16/);
      expect(s).toMatch(/Booting from DVD\/CD/);
      expect(s).toMatch(ISOLINUX_BANNER);
      expect(await page.locator('#error').isHidden()).toBe(true);
      expect(pageErrors).toEqual([]);
    } finally {
      await page.close();
    }
  }, 600_000);
});
