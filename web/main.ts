/**
 * The page: an xterm.js serial console, a canvas for the screen (once the machine has a display
 * adapter), the controls (start, pause/resume, reset, snapshots) and a status line. The VM itself runs
 * in a dedicated module Worker (web/worker.ts) reached through comlink: the CPU never runs here, so the
 * page stays responsive whatever the guest does.
 *
 * Opening the page boots what its address asks for (web/config.ts: the default guest when it asks for
 * nothing). Snapshots are downloaded and kept in the browser (web/storage.ts), listed with name, date and
 * size, and restore from there or from a file. Every failure is shown in plain words in the error bar;
 * the terminal keeps what it showed.
 *
 * For automated tests and curious users, `window.x86vm` gives the serial transcript and the last status.
 */
import * as Comlink from 'comlink';
import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import type { BootConfig, DiskInterface, DiskRequest, FrameUpdate, Source, VmApiContract, VmStatus } from './protocol';
import { parseMemMiB, sizeText } from './protocol';
import { SEABIOS_BIOS, configFromFolder, defaultGuest, parseQuery, seabios, type FolderFile, type PageRequest } from './config';
import { SnapshotStore, type StoredSnapshot } from './storage';

const TRANSCRIPT_MAX = 4 * 1024 * 1024;

function el<T extends HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`the page is missing #${id}`);
  return e as T;
}

const ui = {
  state: el<HTMLSpanElement>('status-state'),
  statusText: el<HTMLSpanElement>('status-text'),
  error: el<HTMLDivElement>('error'),
  errorText: el<HTMLSpanElement>('error-text'),
  errorClose: el<HTMLButtonElement>('error-close'),
  start: el<HTMLButtonElement>('btn-start'),
  pause: el<HTMLButtonElement>('btn-pause'),
  reset: el<HTMLButtonElement>('btn-reset'),
  save: el<HTMLButtonElement>('btn-save'),
  restoreLabel: el<HTMLLabelElement>('lbl-restore'),
  restoreFile: el<HTMLInputElement>('file-snapshot'),
  canvas: el<HTMLCanvasElement>('screen'),
  terminal: el<HTMLDivElement>('terminal'),
  form: el<HTMLFormElement>('boot-form'),
  bootPanel: el<HTMLDetailsElement>('boot-panel'),
  bootDefault: el<HTMLButtonElement>('btn-default'),
  snapshotEmpty: el<HTMLParagraphElement>('snapshot-empty'),
  snapshotTable: el<HTMLTableElement>('snapshot-table'),
  snapshotList: el<HTMLTableSectionElement>('snapshot-list'),
};

// ---- errors: always shown in words, never a blank page ----

let lastErrorShown = '';

function words(e: unknown): string {
  const text = e instanceof Error ? e.message : typeof e === 'string' ? e : String(e);
  // comlink re-throws worker errors as Error with the worker's message; strip a leading "Error: "
  return text.replace(/^Error:\s*/, '');
}

function showError(text: string): void {
  lastErrorShown = text;
  ui.errorText.textContent = text.charAt(0).toUpperCase() + text.slice(1);
  ui.error.hidden = false;
}

function clearError(): void {
  ui.error.hidden = true;
}

ui.errorClose.addEventListener('click', clearError);
window.addEventListener('error', (e) => showError(`something went wrong on this page: ${e.message}`));
window.addEventListener('unhandledrejection', (e) => showError(words(e.reason)));

// ---- the terminal ----

const term = new Terminal({
  cursorBlink: true,
  fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
  fontSize: 14,
  scrollback: 10000,
  theme: { background: '#000000' },
});
const fit = new FitAddon();
term.loadAddon(fit);
term.open(ui.terminal);
const refit = (): void => {
  try {
    fit.fit();
  } catch {
    // not laid out yet
  }
};
refit();
new ResizeObserver(refit).observe(ui.terminal);

let transcript = '';
const decoder = new TextDecoder('utf-8');
const encoder = new TextEncoder();

// ---- the worker ----

const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: 'x86vm' });
worker.addEventListener('error', (e) => {
  e.preventDefault();
  showError(`the emulator could not start in this browser: ${e.message || 'its script failed to load'}`);
});
const api = Comlink.wrap<VmApiContract>(worker);

let status: VmStatus | null = null;
let busy = 0;

function onSerial(bytes: Uint8Array): void {
  term.write(bytes);
  transcript += decoder.decode(bytes, { stream: true });
  if (transcript.length > TRANSCRIPT_MAX) transcript = transcript.slice(transcript.length - TRANSCRIPT_MAX / 2);
}

function onStatus(s: VmStatus): void {
  status = s;
  ui.canvas.hidden = !s.display;
  renderStatus();
  if (s.state === 'error' && s.message && s.message !== lastErrorShown) showError(s.message);
}

// ---- the screen ----

const ctx = ui.canvas.getContext('2d');

function onFrame(update: FrameUpdate): void {
  if (!ctx) return;
  if (ui.canvas.hidden) ui.canvas.hidden = false;
  if (ui.canvas.width !== update.width || ui.canvas.height !== update.height) {
    ui.canvas.width = update.width;
    ui.canvas.height = update.height;
  }
  for (const r of update.rects) {
    if (r.w <= 0 || r.h <= 0) continue;
    ctx.putImageData(new ImageData(r.pixels as Uint8ClampedArray<ArrayBuffer>, r.w, r.h), r.x, r.y);
  }
}

ui.canvas.addEventListener('keydown', (e) => {
  e.preventDefault();
  void api.key(e.code, true);
});
ui.canvas.addEventListener('keyup', (e) => {
  e.preventDefault();
  void api.key(e.code, false);
});
ui.canvas.addEventListener('click', () => {
  ui.canvas.focus();
  if (document.pointerLockElement !== ui.canvas) {
    // a promise in current browsers; refused without a user gesture or in some embeddings (no matter)
    const p = ui.canvas.requestPointerLock?.() as unknown as Promise<void> | undefined;
    p?.catch?.(() => undefined);
  }
});
ui.canvas.addEventListener('mousemove', (e) => {
  if (document.pointerLockElement === ui.canvas) void api.mouse(e.movementX, e.movementY, e.buttons, 0);
});
for (const type of ['mousedown', 'mouseup'] as const) {
  ui.canvas.addEventListener(type, (e) => {
    if (document.pointerLockElement === ui.canvas) void api.mouse(0, 0, e.buttons, 0);
  });
}
ui.canvas.addEventListener(
  'wheel',
  (e) => {
    if (document.pointerLockElement !== ui.canvas) return;
    e.preventDefault();
    void api.mouse(0, 0, e.buttons, Math.sign(e.deltaY));
  },
  { passive: false },
);
ui.canvas.addEventListener('contextmenu', (e) => e.preventDefault());

// keystrokes in the terminal go to the guest's COM1
term.onData((data) => {
  void api.serialInput(encoder.encode(data));
});

// ---- status line and buttons ----

function formatSeconds(s: number): string {
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.floor(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

function renderStatus(): void {
  const s = status;
  const state = s?.state ?? 'idle';
  ui.state.textContent = state;
  ui.state.className = `state-${state}`;
  const parts: string[] = [];
  if (s && s.label && state !== 'idle') parts.push(s.label);
  if (s && (state === 'running' || state === 'paused')) {
    parts.push(`${s.mips.toFixed(1)} MIPS`);
    parts.push(`guest time ${formatSeconds(s.guestSeconds)}`);
    parts.push(`${s.memMiB} MiB RAM`);
  }
  if (s?.message) parts.push(s.message);
  ui.statusText.textContent = parts.join(' · ') || 'Nothing is running.';
  const live = state === 'running' || state === 'paused';
  ui.start.disabled = busy > 0 || state === 'running' || state === 'paused' || state === 'loading';
  ui.pause.disabled = busy > 0 || !live;
  ui.pause.textContent = state === 'paused' ? 'Resume' : 'Pause';
  ui.reset.disabled = busy > 0 || state === 'idle' || state === 'loading';
  const snaps = !!s?.snapshots;
  ui.save.disabled = busy > 0 || !live || !snaps;
  ui.restoreFile.disabled = busy > 0 || !snaps;
  ui.restoreLabel.classList.toggle('disabled', ui.restoreFile.disabled);
  ui.restoreLabel.title = snaps ? 'Restore a snapshot file (.snap) from this computer' : 'Snapshots are not available in this build';
  document.title = state === 'running' && s?.label ? `x86vm — ${s.label}` : 'x86vm';
}

/** runs a control operation: buttons are disabled meanwhile, failures are shown */
async function act<T>(what: () => Promise<T>): Promise<T | undefined> {
  busy++;
  renderStatus();
  try {
    return await what();
  } catch (e) {
    showError(words(e));
    return undefined;
  } finally {
    busy--;
    renderStatus();
  }
}

// ---- what to boot ----

let chosen: BootConfig = defaultGuest();
let request: PageRequest;
try {
  request = parseQuery(location.search);
} catch (e) {
  showError(`${words(e)}; booting nothing until you choose`);
  request = { boot: defaultGuest(), snapshot: null, autostart: false };
}
if (request.boot) chosen = request.boot;

const formField = (name: string): HTMLInputElement | HTMLSelectElement =>
  ui.form.elements.namedItem(name) as HTMLInputElement | HTMLSelectElement;

/** the firmware is the SeaBIOS served beside the page (config.ts seabios()) */
function isPageSeabios(s: Source | undefined): boolean {
  return !!s && 'url' in s && s.url === SEABIOS_BIOS && s.name === 'SeaBIOS';
}

function fillForm(cfg: BootConfig): void {
  const urlOf = (s: Source | undefined) => (s && 'url' in s ? s.url : '');
  (formField('kernel') as HTMLInputElement).value = cfg.label === 'default guest' ? '' : urlOf(cfg.kernel);
  (formField('initrd') as HTMLInputElement).value = cfg.label === 'default guest' ? '' : urlOf(cfg.initrd);
  (formField('append') as HTMLInputElement).value = cfg.append ?? '';
  (formField('mem') as HTMLInputElement).value = cfg.memMiB ? `${cfg.memMiB}M` : '';
  const pageSeabios = isPageSeabios(cfg.bios);
  (formField('seabios') as HTMLInputElement).checked = pageSeabios;
  (formField('bios') as HTMLInputElement).value = pageSeabios ? '' : urlOf(cfg.bios);
  (formField('bootorder') as HTMLInputElement).value = cfg.bootOrder ?? '';
  (formField('disk') as HTMLInputElement).value = urlOf(cfg.disks?.find((d) => d.media !== 'cdrom')?.source);
  (formField('cdrom') as HTMLInputElement).value = urlOf(cfg.disks?.find((d) => d.media === 'cdrom')?.source);
  (formField('vga') as HTMLInputElement).checked = !!cfg.vga;
}

{
  const sel = formField('disk-if') as HTMLSelectElement;
  for (const [value, text] of [
    ['', 'automatic'],
    ['virtio-blk', 'virtio-blk'],
    ['ide', 'IDE'],
    ['virtio-scsi', 'virtio-scsi'],
  ]) {
    const o = document.createElement('option');
    o.value = value;
    o.textContent = text;
    sel.append(o);
  }
}
fillForm(chosen);

/** the configuration the form describes; the default guest when no kernel or firmware is given */
async function configFromForm(): Promise<BootConfig> {
  const text = (n: string) => (formField(n) as HTMLInputElement).value.trim();
  const file = (n: string) => (formField(n) as HTMLInputElement).files?.[0];
  const folder = (formField('folder') as HTMLInputElement).files;
  let cfg: BootConfig;
  if (folder && folder.length) {
    const files: FolderFile[] = Array.from(folder).map((f) => ({ path: f.webkitRelativePath || f.name, blob: f }));
    cfg = await configFromFolder(files);
  } else {
    const source = (n: string): Source | undefined => {
      const f = file(`${n}-file`);
      if (f) return { blob: f, name: f.name };
      const u = text(n);
      return u ? { url: u, name: u.split(/[?#]/)[0].split('/').pop() || u } : undefined;
    };
    const kernel = source('kernel');
    const useSeabios = (formField('seabios') as HTMLInputElement).checked;
    const biosGiven = source('bios');
    if (useSeabios && biosGiven) throw new Error('choose SeaBIOS or a firmware image of your own, not both');
    const firmware = useSeabios ? seabios() : { bios: biosGiven };
    const bios = firmware.bios;
    const initrd = source('initrd');
    const diskSource = source('disk');
    const cdromSource = source('cdrom');
    if (!kernel && !bios) {
      if (initrd) throw new Error('an initrd needs a kernel: give one, or leave both empty for the default guest');
      cfg = defaultGuest();
    } else {
      const first = diskSource ?? cdromSource;
      const label = kernel ? sourceLabel(kernel) : useSeabios ? (first ? `SeaBIOS: ${sourceLabel(first)}` : 'SeaBIOS') : sourceLabel(bios!);
      cfg = { label, kernel, initrd, ...firmware };
      const order = text('bootorder');
      if (order) cfg.bootOrder = order;
    }
    const append = text('append');
    if (append || kernel || bios) cfg.append = append;
    const iface = ((formField('disk-if') as HTMLSelectElement).value as DiskInterface | '') || undefined;
    const disks: DiskRequest[] = [];
    if (diskSource) disks.push({ source: diskSource, interface: iface, readOnly: (formField('disk-ro') as HTMLInputElement).checked });
    if (cdromSource) disks.push({ source: cdromSource, interface: iface, media: 'cdrom', readOnly: true });
    if (disks.length) cfg.disks = disks;
  }
  if ((formField('vga') as HTMLInputElement).checked) cfg.vga = true;
  const mem = text('mem');
  if (mem) {
    const m = parseMemMiB(mem);
    if (typeof m === 'string') throw new Error(`memory: ${m}`);
    cfg.memMiB = m;
  }
  return cfg;
}

function sourceLabel(s: Source): string {
  return 'url' in s ? (s.name ?? s.url) : s.name;
}

async function boot(cfg: BootConfig): Promise<void> {
  chosen = cfg;
  clearError();
  await act(() => api.boot(cfg, document.baseURI));
}

ui.form.addEventListener('submit', (e) => {
  e.preventDefault();
  void act(async () => {
    const cfg = await configFromForm();
    term.reset();
    await boot(cfg);
  });
});
ui.bootDefault.addEventListener('click', () => {
  term.reset();
  void boot(defaultGuest());
});

ui.start.addEventListener('click', () => {
  term.reset();
  void boot(chosen);
});
ui.pause.addEventListener('click', () => {
  void act(() => (status?.state === 'paused' ? api.resume() : api.pause()));
});
ui.reset.addEventListener('click', () => {
  clearError();
  term.reset();
  void act(() => api.reset());
});

// ---- snapshots ----

const store = new SnapshotStore();

function download(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

async function refreshSnapshots(): Promise<void> {
  let list: StoredSnapshot[];
  try {
    list = await store.list();
  } catch (e) {
    ui.snapshotEmpty.textContent = `Snapshots cannot be kept in this browser: ${words(e)}`;
    ui.snapshotEmpty.hidden = false;
    ui.snapshotTable.hidden = true;
    return;
  }
  ui.snapshotList.replaceChildren();
  for (const s of list) {
    const tr = document.createElement('tr');
    tr.dataset.id = String(s.id);
    const cell = (text: string, cls?: string) => {
      const td = document.createElement('td');
      td.textContent = text;
      if (cls) td.className = cls;
      tr.append(td);
      return td;
    };
    cell(s.name, 'name');
    cell(new Date(s.date).toLocaleString(), 'date');
    cell(sizeText(s.size), 'size');
    const actions = cell('', 'actions');
    const button = (label: string, cls: string, fn: () => void) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = label;
      b.className = cls;
      b.addEventListener('click', fn);
      actions.append(b);
    };
    button('Restore', 'restore', () => void restore({ blob: s.blob, name: s.name }));
    button('Download', 'download', () => download(s.blob, s.name));
    button('Delete', 'delete', () => {
      void act(async () => {
        await store.remove(s.id);
        await refreshSnapshots();
      });
    });
    ui.snapshotList.append(tr);
  }
  ui.snapshotEmpty.textContent = 'No snapshots kept in this browser yet.';
  ui.snapshotEmpty.hidden = list.length > 0;
  ui.snapshotTable.hidden = list.length === 0;
}

async function restore(source: Source): Promise<void> {
  clearError();
  await act(async () => {
    term.reset();
    await api.restoreSnapshot(source, document.baseURI);
  });
}

ui.save.addEventListener('click', () => {
  void act(async () => {
    const file = await api.saveSnapshot();
    const blob = new Blob([file.bytes as Uint8Array<ArrayBuffer>], { type: 'application/octet-stream' });
    download(blob, file.name);
    try {
      await store.add(file.name, blob);
    } finally {
      await refreshSnapshots();
    }
  });
});

ui.restoreFile.addEventListener('change', () => {
  const f = ui.restoreFile.files?.[0];
  ui.restoreFile.value = '';
  if (f) void restore({ blob: f, name: f.name });
});

// ---- for tests and the browser console ----

declare global {
  interface Window {
    x86vm: {
      transcript(): string;
      status(): VmStatus | null;
      /** resolves once the guest's serial output matches `re` (after `from` characters of the transcript) */
      waitFor(re: RegExp | string, from?: number, timeoutMs?: number): Promise<string>;
      /** the guest's text-mode screen as text, a row a string (null in graphics modes or without a display) */
      screenText(): Promise<string[] | null>;
    };
  }
}

window.x86vm = {
  transcript: () => transcript,
  status: () => status,
  screenText: () => api.screenText(),
  waitFor(re, from = 0, timeoutMs = 120_000) {
    const rx = typeof re === 'string' ? new RegExp(re) : re;
    const t0 = performance.now();
    return new Promise((resolve, reject) => {
      const check = () => {
        const m = rx.exec(transcript.slice(from));
        if (m) resolve(m[0]);
        else if (performance.now() - t0 > timeoutMs) reject(new Error(`timed out waiting for ${rx}`));
        else setTimeout(check, 100);
      };
      check();
    });
  },
};

// ---- start ----

renderStatus();
await api.setListener(Comlink.proxy({ onSerial, onStatus, onFrame }));
void refreshSnapshots();
if (request.autostart) {
  if (request.snapshot) await restore(request.snapshot);
  else await boot(chosen);
} else if ((status as VmStatus | null)?.state === 'idle') {
  ui.statusText.textContent = 'Ready: press Start, or choose what to boot.';
}
if (!request.autostart) ui.bootPanel.open = true;
