/**
 * The protocol between the page (web/main.ts) and the VM's Worker (web/worker.ts → web/vm-api.ts), as
 * plain types: everything here crosses postMessage (structured clone), so it is data only — numbers,
 * strings, typed arrays, Blobs. The page calls the worker's methods through comlink; the worker reports
 * back through one listener object (serial output in batches, status changes, screen updates).
 *
 * No DOM and no Node APIs here: the unit tests import this module in Node.
 */

/** where a kernel, initrd, firmware, disk image or snapshot comes from */
export type Source =
  /**
   * fetched from a URL (absolute, or relative to `base` given to the worker); `hint` is added to the
   * message when it cannot be downloaded (what to do about it)
   */
  | { url: string; name?: string; hint?: string }
  /** a file picked on the computer (a File is a Blob): read lazily, never copied whole for disks */
  | { blob: Blob; name: string }
  /** bytes already in memory */
  | { bytes: Uint8Array; name: string };

export type DiskInterface = 'virtio-blk' | 'ide' | 'virtio-scsi';
export type DiskMedia = 'disk' | 'cdrom';

export interface DiskRequest {
  source: Source;
  /** controller (default: IDE when the IDE controller exists, else virtio-blk) */
  interface?: DiskInterface;
  /** disk or CD-ROM (default: cdrom for an ISO image, else disk) */
  media?: DiskMedia;
  /** image format (raw, vhd, vdi, iso); detected from the contents when absent */
  format?: string;
  /**
   * read-only for the guest. Otherwise the guest's writes go to a copy-on-write overlay in memory: the
   * file or URL is never written (a browser page cannot write back to either).
   */
  readOnly?: boolean;
}

/** what to boot */
export interface BootConfig {
  /** shown in the status line (e.g. "default guest") */
  label?: string;
  /** a Linux bzImage or a Multiboot kernel */
  kernel?: Source;
  initrd?: Source;
  /** kernel command line */
  append?: string;
  /** a firmware image (64–256 KiB, e.g. SeaBIOS's bios.bin) instead of, or as well as, a kernel */
  bios?: Source;
  /**
   * the VGA's option ROM (e.g. SeaBIOS's vgabios-stdvga.bin, the PCI expansion ROM): a firmware that runs
   * option ROMs then draws its screen through it. Implies a VGA.
   */
  vgaBios?: Source;
  /** the firmware's boot order in QEMU's -boot letters: c hard disk, d CD-ROM, a floppy, n network (default "cad") */
  bootOrder?: string;
  /** RAM in MiB (default 128) */
  memMiB?: number;
  /** guest time follows the instruction count */
  deterministic?: boolean;
  /** a local APIC and IOAPIC (default true); false: the 8259 PIC only */
  apic?: boolean;
  /** a VGA display adapter shown on the page's canvas (default: with a firmware image only) */
  vga?: boolean;
  disks?: DiskRequest[];
  /**
   * the files picked with the configuration (a VM folder), by path relative to it: where a differencing
   * image finds its parent
   */
  files?: Map<string, Blob>;
}

/**
 * - idle: nothing booted yet
 * - loading: fetching files / building the machine / restoring a snapshot
 * - running, paused
 * - stopped: the guest powered off, halted for good, or exited (message says which)
 * - error: the guest crashed (triple fault) or the emulator failed (message says what)
 */
export type VmState = 'idle' | 'loading' | 'running' | 'paused' | 'stopped' | 'error';

export interface VmStatus {
  state: VmState;
  /** a sentence for the page (what happened, what to do) */
  message: string;
  /** what is running: "default guest", a kernel's file name, "snapshot x.snap" */
  label: string;
  /** guest instructions retired since power-on */
  instructions: number;
  /** guest speed over the last status interval, in millions of instructions per second */
  mips: number;
  /** guest time since power-on, in seconds */
  guestSeconds: number;
  /** RAM in MiB */
  memMiB: number;
  /** the machine has a display adapter whose frames come through onFrame */
  display: boolean;
  /** snapshots can be saved and restored (core/snapshot.ts is present) */
  snapshots: boolean;
}

/** one changed rectangle of the screen, as RGBA pixels (w*h*4 bytes, rows packed) */
export interface FrameRect {
  x: number;
  y: number;
  w: number;
  h: number;
  pixels: Uint8ClampedArray;
}

/** screen changes since the last update; `full` means redraw everything (mode change) */
export interface FrameUpdate {
  width: number;
  height: number;
  full: boolean;
  rects: FrameRect[];
}

/** what the worker reports; every method is optional */
export interface VmListener {
  /** bytes the guest wrote to COM1 (batched: once per run slice at most) */
  onSerial?(bytes: Uint8Array): void;
  onStatus?(status: VmStatus): void;
  onFrame?(update: FrameUpdate): void;
}

/** a saved snapshot as the worker hands it to the page */
export interface SnapshotFile {
  /** suggested file name, e.g. "x86vm-20250101-120000.snap" */
  name: string;
  bytes: Uint8Array;
}

/** the methods the worker exposes (web/vm-api.ts implements them) */
export interface VmApiContract {
  setListener(listener: VmListener | null): void;
  /** boots a configuration; rejects with a plain-words Error (bad file, failed fetch, too much RAM…) */
  boot(config: BootConfig, base?: string): Promise<VmStatus>;
  pause(): Promise<VmStatus>;
  resume(): Promise<VmStatus>;
  /** power-cycles the machine: boots the last configuration again */
  reset(): Promise<VmStatus>;
  /** stops and frees the machine */
  shutdown(): Promise<VmStatus>;
  /** bytes typed on the serial console */
  serialInput(bytes: Uint8Array): void;
  /** a key on the PS/2 keyboard, named as DOM KeyboardEvent.code ("KeyA", "Enter", …) */
  key(code: string, down: boolean): void;
  /** PS/2 mouse motion (dy down) with DOM MouseEvent.buttons, and wheel steps */
  mouse(dx: number, dy: number, buttons: number, dz: number): void;
  status(): VmStatus;
  /**
   * the display's text-mode screen as text (CP437 decoded), one string a row with trailing spaces
   * trimmed; null in a graphics mode or without a display
   */
  screenText(): string[] | null;
  saveSnapshot(): Promise<SnapshotFile>;
  restoreSnapshot(source: Source, base?: string): Promise<VmStatus>;
}

/** text for a byte count: "3.2 MiB" */
export function sizeText(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/** the name a Source is known by in messages */
export function sourceName(s: Source): string {
  if ('url' in s) return s.name ?? s.url;
  return s.name;
}

/**
 * Parses a RAM size as written in a URL or a form: "128", "128M", "128MiB", "1G". Returns MiB, or a
 * string explaining what is wrong.
 */
export function parseMemMiB(text: string): number | string {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(k|m|g)?(?:i?b)?\s*$/i.exec(text);
  if (!m) return `'${text}' is not a memory size (write e.g. 128, 128M or 1G)`;
  const n = Number(m[1]);
  const unit = (m[2] ?? 'm').toLowerCase();
  const mib = unit === 'g' ? n * 1024 : unit === 'k' ? n / 1024 : n;
  if (!Number.isInteger(mib)) return `'${text}' is not a whole number of MiB`;
  return mib;
}
