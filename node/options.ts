/**
 * Command-line parsing for `x86vm run` (Node's util.parseArgs) and the help texts. Turns argv into a
 * validated RunOptions or throws a UsageError whose message names the problem (exit status 2).
 */
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { compileExpect, parseScript, ScriptError, unescapeText, type ScriptStep } from './expect';
import { parseDrive, shorthandDrive, type DriveSpec } from './drives';
import { parseNicOption, type NicSpec } from './nics';
import { BootOrderError, parseBootOption, type BootConfig } from '../core/bootorder';
import { parseRamSize } from '../core/vmconfig';
import { applyVmSettings, loadVmConfig, vmFileOf } from './vmconfig';

export const VERSION = '0.1.0';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export type SerialOption = { kind: 'stdio' } | { kind: 'none' } | { kind: 'file'; path: string };

export interface RunOptions {
  bios?: string;
  kernel?: string;
  initrd?: string;
  append?: string;
  /** scripted console session (--expect/--send pairs or --script FILE), in order */
  script: ScriptStep[];
  /** boot the default Linux guest (images/default) because neither --kernel nor --bios was given */
  defaultGuest?: boolean;
  /** RAM in bytes */
  memSize: number;
  serial: SerialOption;
  debugcon?: string;
  /** SeaBIOS's debug log (port 0x402) to this file */
  firmwareLog?: string;
  postLog?: string;
  /** wall-clock limit in seconds */
  timeout?: number;
  maxInstructions?: number;
  deterministic: boolean;
  noReboot: boolean;
  /** disks and CD-ROMs (--hda … --hdd, --cdrom, --drive), in command-line order */
  drives: DriveSpec[];
  /** keep every disk write in memory (--snapshot): the image files stay untouched */
  snapshot: boolean;
  /** --mem was given (a restored machine takes its RAM size from the snapshot) */
  memExplicit?: boolean;
  /** --save-state FILE: where --save-at / --save-on write the snapshot */
  saveState?: string;
  /** --save-at N: save when the instruction count reaches N (counted from power-on), then stop */
  saveAt?: number;
  /** --save-on REGEX: save when the serial output matches, then stop */
  saveOn?: { re: RegExp; source: string };
  /** --restore FILE: continue from a snapshot */
  restore?: string;
  /** --boot: firmware boot order and options in QEMU's terms */
  boot?: BootConfig;
  /** --vga: a VGA card (default: with --bios, 'std'; for a direct kernel boot, 'none') */
  vga?: 'std' | 'none';
  /** --vga-bios FILE: the VGA BIOS (default with --bios: vgabios-stdvga.bin next to SeaBIOS, when present) */
  vgaBios?: string;
  /** --screenshot FILE: a PNG of the screen when the run ends */
  screenshot?: string;
  /** --vga-text: print the text-mode screen to stdout when the run ends */
  vgaText?: boolean;
  /** network cards (--nic), in command-line order */
  nics?: NicSpec[];
  /** a local APIC and an IOAPIC (default true; vm.json "cpu": { "apic": false } turns them off) */
  apic?: boolean;
  /** the vm.json the run came from (`x86vm run vm.json`), and its VM's name */
  vmFile?: string;
  vmName?: string;
}

export const DEFAULT_MEM = 128 * 1024 * 1024;

export const MAIN_HELP = `x86vm ${VERSION} — a PC emulator for 32-bit x86 in TypeScript

Usage:
  x86vm run [options]     run a virtual machine (see: x86vm run --help)
  x86vm run VM [options]  run the VM of a vm.json (VM: the file, or the folder holding it)
  x86vm create DIR [options]  a new VM folder: vm.json and new disk images (x86vm create --help)
  x86vm snapshot info FILE  what a snapshot holds (see: x86vm snapshot --help)
  x86vm disk COMMAND ...  disk images: info, create, convert, check, commit (x86vm disk --help)
  x86vm switch --listen ADDR  a virtual Ethernet switch VMs join with --nic switch=ADDR
  x86vm --help            show this help
  x86vm --version         show the version
`;

export const RUN_HELP = `Usage: x86vm run [options]
       x86vm run VM [options]

With neither --kernel nor --bios, the default Linux guest (images/default) boots with the
terminal as its serial console.

VM is a vm.json, or a folder holding one (x86vm create DIR makes one): the VM it describes
runs, its paths relative to its folder whatever the current directory. Options given too
override the file's settings (--mem, --serial, --boot; --kernel or --bios replaces its
firmware, --initrd/--append/--cdrom replace its own) or add to them (--hda…--hdd/--drive
disks and --nic cards after its own; --deterministic, --no-reboot, --snapshot).

Boot firmware or a kernel:
  --bios FILE             firmware image (64–256 KiB, a multiple of 64 KiB) mapped to end at 4 GiB,
                          its last 128 KiB also below 1 MiB; starts at the reset vector F000:FFF0
  --kernel FILE           a Linux bzImage, or a Multiboot v1 kernel (ELF32 or a.out kludge)
  --initrd FILE           initial ramdisk for a Linux kernel
  --append STR            kernel command line (Multiboot: passed as "FILE STR", like QEMU)

Machine:
  --mem SIZE              RAM size: 32M, 1G, 640K, or a plain number of MiB (default 128M)
  --deterministic         guest time follows the instruction count (reproducible runs)
  --no-reboot             a guest reset ends the run instead of rebooting (a triple fault: exit 4)

Disks (the image format — raw, VHD, VDI, ISO — is detected from the contents):
  --hda/--hdb/--hdc/--hdd FILE
                          IDE disk: primary master/slave, secondary master/slave
  --cdrom FILE            IDE CD-ROM (secondary master), read-only
  --drive file=FILE[,if=ide|virtio-blk|virtio-scsi][,media=disk|cdrom][,format=raw|vhd|vdi|iso]
          [,readonly=on][,index=N][,snapshot=on]
                          any disk or CD-ROM; index: IDE slot 0–3 or SCSI target 0–7
  --snapshot              keep every disk write in memory; the image files stay untouched (with
                          --restore: the snapshot's drives, so it can be restored again)
  --boot ORDER[,once=L][,menu=on][,splash-time=MS][,strict=on][,reboot-timeout=MS]
                          firmware boot order in QEMU's letters: c disk, d CD-ROM, a floppy,
                          n network (default cad)

Network:
  --nic model=ne2k|virtio[,mac=MAC][,link=up|down][,pcap=FILE]
        [,switch=unix:PATH|tcp:127.0.0.1:PORT | ,user[,allow=[tcp:|udp:][A.B.C.D:]PORT[-PORT]]
        [,hostfwd=tcp:[127.0.0.1]:HOSTPORT-:GUESTPORT][,dns=NAME:A.B.C.D]]
                          a network card: on an x86vm switch, or on the user-mode NAT (guest
                          10.0.2.15, gateway 10.0.2.2; reaches only what allow= names)

Screen:
  --vga std|none          a VGA card (standard VGA + Bochs VBE on PCI); default std with --bios,
                          none for a direct kernel boot
  --vga-bios FILE         VGA BIOS for the card's option ROM (default with --bios:
                          /usr/share/seabios/vgabios-stdvga.bin when present)
  --screenshot FILE       write a PNG of the screen when the run ends (Ctrl-A G: one at any time)
  --vga-text              print the text-mode screen on stdout when the run ends

Devices and output:
  --serial stdio|file:PATH|none
                          COM1 (0x3F8) console (default stdio; on a terminal, Ctrl-A X quits,
                          Ctrl-A H shows the escape keys, Ctrl-A A sends Ctrl-A)
  --debugcon FILE         write every byte the guest writes to port 0xE9 to FILE
  --firmware-log FILE     write the firmware's debug log (SeaBIOS writes it to port 0x402) to FILE
  --post-log FILE         write every POST code (ports 0x80 and 0x190) to FILE, one byte per write

Scripted console (CI):
  --expect REGEX          wait until the serial output matches REGEX ...
  --send TEXT             ... then type TEXT (escapes: \\n \\r \\t \\e \\xNN); repeat the pair as needed
  --script FILE           the same from a file: lines "expect REGEX" / "send TEXT", # comments

Snapshots (the whole machine: CPU, RAM, devices, clock; see x86vm snapshot info):
  --save-state FILE       where --save-at / --save-on save the machine (then the run stops, status 0)
  --save-at N             save when N instructions have run since power-on
  --save-on REGEX         save as soon as the serial output matches REGEX
  --restore FILE          continue from a snapshot in the mode it was saved in (RAM size and devices
                          come from it; a --deterministic run continues byte for byte); a console
                          script running at the save goes on, unless --expect/--send give a new one;
                          the snapshot's disks come back with it (drive options are refused), found
                          beside the snapshot first, and an image changed since the save is refused
  On a terminal, Ctrl-A S saves a snapshot (x86vm-DATE-TIME.snap) and goes on; Ctrl-A P pauses.

Limits:
  --timeout SECONDS       stop after this much wall-clock time (exit 124)
  --max-instructions N    stop after N instructions (exit 124)

  -h, --help              show this help

Exit status:
  0    the guest powered off (or reset, with --no-reboot)
  2v+1 the guest wrote v to isa-debug-exit (port 0xF4), as QEMU's
       -device isa-debug-exit,iobase=0xf4,iosize=4 (the low 8 bits of 2v+1)
  2    bad usage or unreadable input
  3    the CPU halted with interrupts disabled and nothing can wake it
  4    triple fault with --no-reboot
  70   internal error (a bug in x86vm)
  124  --timeout or --max-instructions reached
`;

const RUN_OPTIONS = {
  bios: { type: 'string' },
  kernel: { type: 'string' },
  initrd: { type: 'string' },
  append: { type: 'string' },
  expect: { type: 'string', multiple: true },
  send: { type: 'string', multiple: true },
  script: { type: 'string' },
  mem: { type: 'string' },
  serial: { type: 'string' },
  debugcon: { type: 'string' },
  'firmware-log': { type: 'string' },
  'post-log': { type: 'string' },
  timeout: { type: 'string' },
  'max-instructions': { type: 'string' },
  deterministic: { type: 'boolean' },
  'no-reboot': { type: 'boolean' },
  hda: { type: 'string' },
  hdb: { type: 'string' },
  hdc: { type: 'string' },
  hdd: { type: 'string' },
  cdrom: { type: 'string' },
  drive: { type: 'string', multiple: true },
  snapshot: { type: 'boolean' },
  'save-state': { type: 'string' },
  'save-at': { type: 'string' },
  'save-on': { type: 'string' },
  restore: { type: 'string' },
  boot: { type: 'string' },
  nic: { type: 'string', multiple: true },
  vga: { type: 'string' },
  'vga-bios': { type: 'string' },
  screenshot: { type: 'string' },
  'vga-text': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

function bootOption(text: string): BootConfig {
  try {
    return parseBootOption(text);
  } catch (e) {
    if (e instanceof BootOrderError) throw new UsageError(`--boot: ${e.message}`);
    throw e;
  }
}

function vgaOption(text: string): 'std' | 'none' {
  if (text === 'std' || text === 'none') return text;
  throw new UsageError(`--vga: '${text}' is not std or none`);
}

/** parses a memory size: "32M", "1G", "640K", "512MiB", or a plain number of MiB */
export function parseMemSize(text: string, option = '--mem'): number {
  const bytes = parseRamSize(text);
  if (typeof bytes === 'string') throw new UsageError(`${option}: ${bytes} (got '${text}'; e.g. 32M, 1G, or a number of MiB)`);
  return bytes;
}

export function parseSerial(text: string): SerialOption {
  if (text === 'stdio') return { kind: 'stdio' };
  if (text === 'none' || text === 'null') return { kind: 'none' };
  if (text.startsWith('file:') && text.length > 5) return { kind: 'file', path: text.slice(5) };
  throw new UsageError(`--serial: expected stdio, file:PATH or none (got '${text}')`);
}

function parsePositive(name: string, text: string, integer: boolean): number {
  const v = Number(text.replace(/_/g, ''));
  if (text.trim() === '' || !Number.isFinite(v) || v <= 0 || (integer && !Number.isSafeInteger(v))) {
    throw new UsageError(`--${name}: expected a positive ${integer ? 'integer' : 'number'} (got '${text}')`);
  }
  return v;
}

function nonEmpty(name: string, v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  if (v === '') throw new UsageError(`--${name}: the file name is empty`);
  return v;
}

function saveOnOption(source: string): { re: RegExp; source: string } {
  try {
    return { re: compileExpect(source, '--save-on'), source };
  } catch (e) {
    if (e instanceof ScriptError) throw new UsageError(e.message);
    throw e;
  }
}

export type Command =
  | { command: 'help'; text: string }
  | { command: 'version' }
  | { command: 'run'; options: RunOptions };

/** parses the whole command line (argv without node and the script) */
export function parseCommandLine(argv: string[]): Command {
  const first = argv[0];
  if (first === undefined) {
    throw new UsageError(`no command given; try 'x86vm run --kernel FILE' or 'x86vm --help'`);
  }
  if (first === '--help' || first === '-h' || first === 'help') return { command: 'help', text: MAIN_HELP };
  if (first === '--version' || first === '-V') return { command: 'version' };
  if (first !== 'run') {
    if (first.startsWith('-')) throw new UsageError(`unknown option '${first}'; the options belong after 'run' (x86vm run --help)`);
    throw new UsageError(`unknown command '${first}' (x86vm --help lists the commands)`);
  }
  let values: Record<string, string | boolean | string[] | undefined>;
  let positionals: string[] = [];
  const script: ScriptStep[] = [];
  const drives: DriveSpec[] = [];
  const nics: NicSpec[] = [];
  try {
    const parsed = parseArgs({ args: argv.slice(1), options: RUN_OPTIONS, strict: true, allowPositionals: true, tokens: true });
    values = parsed.values;
    positionals = parsed.positionals;
    // --expect and --send keep their command-line order, and so do the drives
    for (const t of parsed.tokens ?? []) {
      if (t.kind === 'option' && ['hda', 'hdb', 'hdc', 'hdd', 'cdrom'].includes(t.name)) drives.push(shorthandDrive(t.name, t.value ?? ''));
      if (t.kind === 'option' && t.name === 'drive') drives.push(parseDrive(t.value ?? ''));
      if (t.kind === 'option' && t.name === 'nic') nics.push(parseNicOption(t.value ?? ''));
      if (t.kind !== 'option' || (t.name !== 'expect' && t.name !== 'send')) continue;
      const v = t.value ?? '';
      if (t.name === 'expect') script.push({ kind: 'expect', re: compileExpect(v, '--expect'), source: v });
      else script.push({ kind: 'send', data: unescapeText(v) });
    }
  } catch (e) {
    if (e instanceof UsageError) throw e;
    // parseArgs explains at length; keep its first sentence (it names the option)
    const msg = (e instanceof Error ? e.message : String(e)).split('\n')[0];
    let first = msg.replace(/\. .*$/, '').replace(/\.\s*$/, '');
    const ambiguous = /^Option '(--[\w-]+)' argument is ambiguous/.exec(first);
    if (ambiguous) first = `option '${ambiguous[1]}' needs a value (write ${ambiguous[1]}=VALUE for one that starts with '-')`;
    if (e instanceof ScriptError) throw new UsageError(e.message);
    throw new UsageError(`${first.charAt(0).toLowerCase()}${first.slice(1)} (x86vm run --help lists the options)`);
  }
  const scriptFile = values.script as string | undefined;
  if (scriptFile !== undefined) {
    if (script.length) throw new UsageError('--script cannot be combined with --expect/--send');
    let text: string;
    try {
      text = readFileSync(scriptFile, 'utf8');
    } catch (e) {
      throw new UsageError(`cannot read script '${scriptFile}': ${(e as Error).message}`);
    }
    try {
      script.push(...parseScript(text, scriptFile));
    } catch (e) {
      if (e instanceof ScriptError) throw new UsageError(e.message);
      throw e;
    }
  }
  if (values.help) return { command: 'help', text: RUN_HELP };
  if (positionals.length > 1) {
    throw new UsageError(`one VM at a time: got ${positionals.map((p) => `'${p}'`).join(' ')} (x86vm run VM [options]; VM is a vm.json or its folder)`);
  }
  if (positionals[0] === '') throw new UsageError('the VM argument is empty (x86vm run VM: a vm.json or its folder)');
  const str = (k: string): string | undefined => values[k] as string | undefined;
  let options: RunOptions = {
    bios: nonEmpty('bios', str('bios')),
    kernel: nonEmpty('kernel', str('kernel')),
    initrd: nonEmpty('initrd', str('initrd')),
    append: str('append'),
    script,
    memSize: str('mem') !== undefined ? parseMemSize(str('mem')!) : DEFAULT_MEM,
    serial: str('serial') !== undefined ? parseSerial(str('serial')!) : { kind: 'stdio' },
    debugcon: nonEmpty('debugcon', str('debugcon')),
    firmwareLog: nonEmpty('firmware-log', str('firmware-log')),
    postLog: nonEmpty('post-log', str('post-log')),
    timeout: str('timeout') !== undefined ? parsePositive('timeout', str('timeout')!, false) : undefined,
    maxInstructions:
      str('max-instructions') !== undefined ? parsePositive('max-instructions', str('max-instructions')!, true) : undefined,
    deterministic: !!values.deterministic,
    noReboot: !!values['no-reboot'],
    drives,
    snapshot: !!values.snapshot,
    memExplicit: str('mem') !== undefined,
    saveState: nonEmpty('save-state', str('save-state')),
    saveAt: str('save-at') !== undefined ? parsePositive('save-at', str('save-at')!, true) : undefined,
    saveOn: str('save-on') !== undefined ? saveOnOption(str('save-on')!) : undefined,
    restore: nonEmpty('restore', str('restore')),
    boot: str('boot') !== undefined ? bootOption(str('boot')!) : undefined,
    vga: str('vga') !== undefined ? vgaOption(str('vga')!) : undefined,
    vgaBios: nonEmpty('vga-bios', str('vga-bios')),
    screenshot: nonEmpty('screenshot', str('screenshot')),
    vgaText: !!values['vga-text'],
    nics,
  };
  if (positionals.length) {
    const vm = loadVmConfig(vmFileOf(positionals[0]));
    options = applyVmSettings(options, vm, { mem: options.memExplicit === true, serial: str('serial') !== undefined });
  }
  if (options.vga === 'none' && (options.vgaBios !== undefined || options.screenshot !== undefined || options.vgaText)) {
    throw new UsageError(`${options.vgaBios !== undefined ? '--vga-bios' : options.screenshot !== undefined ? '--screenshot' : '--vga-text'} needs a VGA (not --vga none)`);
  }
  if ((options.saveAt !== undefined || options.saveOn !== undefined) && options.saveState === undefined) {
    throw new UsageError(`${options.saveAt !== undefined ? '--save-at' : '--save-on'} needs --save-state FILE`);
  }
  if (options.saveState !== undefined && options.saveAt === undefined && options.saveOn === undefined) {
    throw new UsageError('--save-state needs --save-at N or --save-on REGEX (when to save)');
  }
  if (options.restore !== undefined) {
    for (const k of ['kernel', 'bios', 'initrd', 'append'] as const) {
      if (options[k] !== undefined) throw new UsageError(`--${k} cannot be combined with --restore (the snapshot holds the loaded machine)`);
    }
  }
  if (options.append !== undefined && options.kernel === undefined && options.bios !== undefined) {
    throw new UsageError('--append needs --kernel');
  }
  if (options.initrd !== undefined && options.kernel === undefined) {
    throw new UsageError('--initrd needs --kernel');
  }
  if (options.bios === undefined && options.kernel === undefined && options.restore === undefined) {
    // no firmware and no kernel: the default Linux guest (images/default)
    options.defaultGuest = true;
  }
  return { command: 'run', options };
}
