/**
 * `x86vm disk info|create|convert|check|commit`: image files in the spirit of qemu-img.
 *
 * New files (create, convert) are written under a temporary name in the target's directory and then
 * linked into place, which fails if the target exists: an existing file is never overwritten, and an
 * interrupted command leaves no half-written image under the target's name.
 */
import { parseArgs } from 'node:util';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DiskError, SECTOR_SIZE, type BlockDevice, type ByteStore } from '../disk/block';
import { detectFormat, openImage } from '../disk/detect';
import { createRaw } from '../disk/raw';
import { VhdImage, checkVhd, commitVhd, createVhd, describeVhd, parentExtent, vhdRoundedSectors, VHD_MAX_SECTORS } from '../disk/vhd';
import { VdiImage, checkVdi, createVdi } from '../disk/vdi';
import { isZero, sizeText } from '../disk/util';
import { FileStore, NodeOpener } from './file-store';

export const DISK_HELP = `Usage: x86vm disk COMMAND ...

  x86vm disk info FILE
      format, virtual size, file size, space used, parent chain
  x86vm disk create --format FMT FILE SIZE
      a new empty image; SIZE in bytes or with a suffix: 512K, 64M, 10G, 1T
  x86vm disk create --parent PARENT FILE
      a differencing VHD over PARENT (an image of any format), same size
  x86vm disk convert --format FMT IN OUT
      copies IN (format detected; a differencing image reads through its parents) to a
      new OUT; zero blocks are skipped, so OUT is sparse
  x86vm disk check FILE
      checks the image's metadata (VHD: checksums, footer copy, block table, parent;
      VDI: header and block map)
  x86vm disk commit CHILD
      writes a differencing VHD's changes into its parent, then empties CHILD

FMT: raw, vhd-fixed, vhd-dynamic, vdi-static, vdi-dynamic.
VHD sizes are rounded up to a whole CHS geometry, as qemu-img and Virtual PC do, so that
every reader agrees on the size (the extra sectors read as zeros).
create and convert never overwrite an existing file.

Exit status: 0 success (check: no problems), 1 check found problems (listed on stdout),
2 bad usage, or a file that cannot be opened or created (one line on stderr).
`;

const FORMATS = ['raw', 'vhd-fixed', 'vhd-dynamic', 'vdi-static', 'vdi-dynamic'];

class CliError extends Error {}

/** parses a disk size: bytes, or a number with K/M/G/T (powers of 1024) */
export function parseDiskSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT])?(?:i?B)?\s*$/i.exec(text);
  if (!m) throw new CliError(`bad size '${text}' (e.g. 64M, 2G, 10G, or a number of bytes)`);
  const scale = { K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[(m[2] ?? '').toUpperCase() as 'K'] ?? 1;
  const bytes = Number(m[1]) * scale;
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new CliError(`bad size '${text}': not a positive whole number of bytes`);
  if (bytes % SECTOR_SIZE !== 0) throw new CliError(`bad size '${text}': ${bytes} bytes is not a multiple of 512`);
  return bytes;
}

interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
  /** a progress line on a terminal (undefined when stderr is not one) */
  progress?: (text: string) => void;
}

/** runs `x86vm disk ARGS`; returns the exit status */
export async function diskMain(argv: string[], io: Io = defaultIo()): Promise<number> {
  try {
    return await dispatch(argv, io);
  } catch (e) {
    if (e instanceof CliError || e instanceof DiskError) {
      io.err(`x86vm: ${e.message}`);
      return 2;
    }
    throw e;
  }
}

function defaultIo(): Io {
  const tty = process.stderr.isTTY === true;
  return {
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
    progress: tty ? (text) => process.stderr.write(`\r${text}\x1b[K`) : undefined,
  };
}

function parse(
  args: string[],
  command: string,
  options: Record<string, { type: 'string' | 'boolean'; short?: string }>,
): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  try {
    return parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: true });
  } catch (e) {
    const msg = (e instanceof Error ? e.message : String(e)).split('\n')[0].replace(/\. .*$/, '').replace(/\.\s*$/, '');
    throw new CliError(`disk ${command}: ${msg.charAt(0).toLowerCase()}${msg.slice(1)} (x86vm disk --help)`);
  }
}

function positionals(command: string, got: string[], names: string[]): string[] {
  if (got.length !== names.length) {
    throw new CliError(`disk ${command}: expected ${names.join(' ')}, got ${got.length ? got.map((g) => `'${g}'`).join(' ') : 'nothing'} (x86vm disk --help)`);
  }
  for (let i = 0; i < got.length; i++) if (got[i] === '') throw new CliError(`disk ${command}: ${names[i]} is empty`);
  return got;
}

async function dispatch(argv: string[], io: Io): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined) throw new CliError('disk: no command given (info, create, convert, check, commit; x86vm disk --help)');
  if (command === '--help' || command === '-h' || command === 'help') return help(io);
  switch (command) {
    case 'info':
      return info(rest, io);
    case 'create':
      return create(rest, io);
    case 'convert':
      return convert(rest, io);
    case 'check':
      return check(rest, io);
    case 'commit':
      return commit(rest, io);
    default:
      throw new CliError(`disk: unknown command '${command}' (info, create, convert, check, commit)`);
  }
}

// ---- helpers ----

async function openInput(file: string, opener: NodeOpener, options: { readOnly: boolean; parentWritable?: boolean }): Promise<BlockDevice> {
  const store = FileStore.open(file, { readOnly: options.readOnly });
  try {
    return await openImage(store, opener, options);
  } catch (e) {
    await store.close();
    throw e;
  }
}

/** temporary files being written; removed if the command is interrupted */
const temporaries = new Set<string>();
let signalsHooked = false;

function hookSignals(): void {
  if (signalsHooked) return;
  signalsHooked = true;
  const onSignal = (code: number) => () => {
    for (const t of temporaries) {
      try {
        fs.unlinkSync(t);
      } catch {
        // already gone
      }
    }
    process.exit(code); // the 'exit' hook of file-store.ts releases the image locks
  };
  process.on('SIGINT', onSignal(130));
  process.on('SIGTERM', onSignal(143));
  process.on('SIGHUP', onSignal(129));
}

/** a temporary file beside `target` for a new image */
function tempStore(target: string): FileStore {
  const abs = path.resolve(target);
  if (fs.existsSync(abs)) throw new CliError(`${abs}: already exists (x86vm never overwrites an image; remove it first)`);
  const tmp = path.join(path.dirname(abs), `.${path.basename(abs)}.tmp-${process.pid}`);
  hookSignals();
  temporaries.add(tmp);
  return FileStore.open(tmp, { create: 'truncate', lock: false });
}

/** gives the finished temporary file its name; fails if the target has appeared meanwhile */
function publish(tmp: string, target: string): void {
  const abs = path.resolve(target);
  temporaries.delete(tmp);
  try {
    fs.linkSync(tmp, abs);
    fs.unlinkSync(tmp);
  } catch (e) {
    try {
      if (fs.existsSync(abs)) fs.unlinkSync(tmp);
    } catch {
      // leave it
    }
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new CliError(`${abs}: already exists (x86vm never overwrites an image; remove it first)`);
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw e;
    // a file system without hard links
    if (fs.existsSync(abs)) throw new CliError(`${abs}: already exists (x86vm never overwrites an image; remove it first)`);
    fs.renameSync(tmp, abs);
  }
  try {
    const dir = fs.openSync(path.dirname(abs), 'r');
    try {
      fs.fsyncSync(dir);
    } finally {
      fs.closeSync(dir);
    }
  } catch {
    // not every platform can fsync a directory
  }
}

/** builds a new image in a temporary file, then publishes it; the temporary file goes on failure */
async function writeNew(target: string, build: (store: FileStore) => Promise<BlockDevice>): Promise<BlockDevice> {
  const store = tempStore(target);
  let dev: BlockDevice | undefined;
  try {
    dev = await build(store);
    await dev.flush();
  } catch (e) {
    if (dev) await dev.close().catch(() => undefined);
    await store.close().catch(() => undefined);
    temporaries.delete(store.name);
    try {
      fs.unlinkSync(store.name);
    } catch {
      // already gone
    }
    throw e;
  }
  return dev;
}

async function createEmpty(store: ByteStore, format: string, sectors: number): Promise<BlockDevice> {
  switch (format) {
    case 'raw':
      return createRaw(store, sectors * SECTOR_SIZE);
    case 'vhd-fixed':
    case 'vhd-dynamic': {
      const rounded = vhdRoundedSectors(sectors);
      if (rounded > VHD_MAX_SECTORS) throw new CliError(`${store.name}: a VHD holds at most 2040 GiB`);
      const img = await createVhd(store, { sectors: rounded, type: format === 'vhd-fixed' ? 'fixed' : 'dynamic' });
      return img;
    }
    case 'vdi-static':
    case 'vdi-dynamic':
      return createVdi(store, { sectors, type: format === 'vdi-static' ? 'static' : 'dynamic' });
    default:
      throw new CliError(`unknown format '${format}' (one of ${FORMATS.join(', ')})`);
  }
}

function parentOf(dev: BlockDevice): BlockDevice | undefined {
  const p = (dev as { parent?: BlockDevice | null }).parent;
  return p ?? undefined;
}

// ---- info ----

async function info(args: string[], io: Io): Promise<number> {
  const { values, positionals: pos } = parse(args, 'info', {});
  if (values.help) return help(io);
  const [file] = positionals('info', pos, ['FILE']);
  const opener = new NodeOpener();
  const store = FileStore.open(file, { readOnly: true });
  let dev: BlockDevice;
  try {
    dev = await openImage(store, opener, { readOnly: true });
  } catch (e) {
    await store.close();
    throw e;
  }
  try {
    io.out(`file: ${store.name}`);
    io.out(`format: ${dev.format}`);
    io.out(`virtual size: ${sizeText(dev.sectors * SECTOR_SIZE)}`);
    io.out(`file size: ${sizeText(store.size())}`);
    io.out(`space used: ${sizeText(store.allocatedBytes())}`);
    if (dev instanceof VhdImage) for (const line of describeVhd(dev)) io.out(line);
    if (dev instanceof VdiImage) {
      const i = dev.info;
      io.out(`VDI version: ${i.version}`);
      io.out(`UUID: ${i.uuid}`);
      io.out(`blocks: ${i.blocksAllocated} of ${i.blocks} allocated, ${i.blockSize / 1024} KiB each`);
      if (i.type === 'differencing') io.out(`parent UUID: ${i.parentUuid}`);
    }
    let depth = 0;
    for (let p = parentOf(dev); p; p = parentOf(p)) {
      io.out(`${'  '.repeat(depth)}parent: ${p.name} (${p.format}, ${sizeText(p.sectors * SECTOR_SIZE)})`);
      depth++;
    }
  } finally {
    await dev.close();
  }
  return 0;
}

function help(io: Io): number {
  io.out(DISK_HELP.trimEnd());
  return 0;
}

// ---- create ----

async function create(args: string[], io: Io): Promise<number> {
  const { values, positionals: pos } = parse(args, 'create', { format: { type: 'string' }, parent: { type: 'string' } });
  if (values.help) return help(io);
  const format = values.format as string | undefined;
  const parentFile = values.parent as string | undefined;
  if (parentFile !== undefined) {
    if (format !== undefined && format !== 'vhd-differencing') {
      throw new CliError(`disk create: --parent makes a differencing VHD; --format ${format} does not go with it`);
    }
    if (parentFile === '') throw new CliError('disk create: --parent: the file name is empty');
    const [file] = positionals('create --parent PARENT', pos, ['FILE']);
    if (path.resolve(file) === path.resolve(parentFile)) throw new CliError('disk create: FILE and PARENT are the same file');
    const opener = new NodeOpener();
    const parent = await openInput(parentFile, opener, { readOnly: true });
    let dev: BlockDevice;
    try {
      dev = await writeNew(file, (store) => createVhd(store, { type: 'differencing', parent }));
    } catch (e) {
      await parent.close();
      throw e;
    }
    const tmp = (dev as VhdImage).store.name;
    await dev.close(); // closes the parent too
    publish(tmp, file);
    io.out(`created ${path.resolve(file)}: vhd-differencing over ${path.resolve(parentFile)}, ${sizeText(dev.sectors * SECTOR_SIZE)}`);
    return 0;
  }
  if (format === undefined) throw new CliError(`disk create: --format is needed (one of ${FORMATS.join(', ')}), or --parent PARENT`);
  if (!FORMATS.includes(format)) throw new CliError(`disk create: unknown format '${format}' (one of ${FORMATS.join(', ')})`);
  const [file, sizeArg] = positionals('create', pos, ['FILE', 'SIZE']);
  const bytes = parseDiskSize(sizeArg);
  let tmp = '';
  const dev = await writeNew(file, (store) => {
    tmp = store.name;
    return createEmpty(store, format, bytes / SECTOR_SIZE);
  });
  await dev.close();
  publish(tmp, file);
  io.out(`created ${path.resolve(file)}: ${format}, ${sizeText(dev.sectors * SECTOR_SIZE)}`);
  return 0;
}

// ---- convert ----

async function convert(args: string[], io: Io): Promise<number> {
  const { values, positionals: pos } = parse(args, 'convert', { format: { type: 'string' } });
  if (values.help) return help(io);
  const format = values.format as string | undefined;
  if (format === undefined) throw new CliError(`disk convert: --format is needed (one of ${FORMATS.join(', ')})`);
  if (!FORMATS.includes(format)) throw new CliError(`disk convert: unknown format '${format}' (one of ${FORMATS.join(', ')})`);
  const [input, output] = positionals('convert', pos, ['IN', 'OUT']);
  if (path.resolve(input) === path.resolve(output)) throw new CliError('disk convert: IN and OUT are the same file');
  const opener = new NodeOpener();
  const src = await openInput(input, opener, { readOnly: true });
  let tmp = '';
  try {
    const dst = await writeNew(output, async (store) => {
      tmp = store.name;
      const d = await createEmpty(store, format, src.sectors);
      if (d instanceof VhdImage) d.barriers = false; // a scratch file: no need to order its writes on the disk
      await copyData(src, d, io);
      return d;
    });
    await dst.close();
  } finally {
    await src.close();
  }
  publish(tmp, output);
  return 0;
}

/** copies every sector of `src` that holds data and is not all zeros to the (empty) `dst` */
async function copyData(src: BlockDevice, dst: BlockDevice, io: Io): Promise<void> {
  const chunk = 4096; // sectors: 2 MiB
  const buf = new Uint8Array(chunk * SECTOR_SIZE);
  const total = src.sectors;
  let last = 0;
  const show = (done: number, final = false): void => {
    if (!io.progress) return;
    const now = Date.now();
    if (!final && now - last < 100) return;
    last = now;
    io.progress(`converting: ${Math.floor((done / Math.max(total, 1)) * 100)}% (${Math.floor((done * SECTOR_SIZE) / 1048576)} of ${Math.floor((total * SECTOR_SIZE) / 1048576)} MiB)`);
  };
  let s = 0;
  while (s < total) {
    const ext = await parentExtent(src, s, Math.min(total - s, 1 << 30));
    const span = Math.max(1, Math.min(ext.sectors, total - s));
    if (!ext.allocated) {
      s += span;
      show(s);
      continue;
    }
    const end = s + span;
    while (s < end) {
      // stay aligned to the chunk so a run of zeros maps to whole blocks in the output
      const n = Math.min(chunk - (s % chunk), end - s);
      const part = buf.subarray(0, n * SECTOR_SIZE);
      await src.read(s, part);
      if (!isZero(part)) await dst.write(s, part);
      s += n;
      show(s);
    }
  }
  if (io.progress) {
    show(total, true);
    io.progress('');
  }
}

// ---- check ----

async function check(args: string[], io: Io): Promise<number> {
  const { values, positionals: pos } = parse(args, 'check', {});
  if (values.help) return help(io);
  const [file] = positionals('check', pos, ['FILE']);
  const opener = new NodeOpener();
  const store = FileStore.open(file, { readOnly: true });
  let problems: string[];
  let format: string;
  try {
    format = await detectFormat(store);
    if (format === 'vhd') {
      problems = await checkVhd(store, opener, { openParent: (ps, o) => openImage(ps, opener, { readOnly: o.readOnly }) });
    } else if (format === 'vdi') {
      problems = await checkVdi(store);
    } else {
      problems = [];
    }
    if (problems.length === 0) {
      // the whole chain must open too (a VDI's parent, an ISO's volume descriptor, …)
      try {
        const dev = await openImage(store, opener, { readOnly: true, format });
        format = dev.format;
        await dev.close(); // closes the store too (closing it again below is harmless)
      } catch (e) {
        if (!(e instanceof DiskError)) throw e;
        if (!['vhd', 'vdi', 'iso'].includes(format)) throw e; // a format we do not read
        problems.push(e.message.startsWith(`${store.name}: `) ? e.message.slice(store.name.length + 2) : e.message);
      }
    }
  } finally {
    await store.close();
  }
  if (problems.length === 0) {
    io.out(`${store.name}: ${format}: no problems found`);
    return 0;
  }
  for (const p of problems) io.out(`${store.name}: ${p}`);
  io.out(`${problems.length} problem${problems.length === 1 ? '' : 's'} found`);
  return 1;
}

// ---- commit ----

async function commit(args: string[], io: Io): Promise<number> {
  const { values, positionals: pos } = parse(args, 'commit', {});
  if (values.help) return help(io);
  const [file] = positionals('commit', pos, ['CHILD']);
  const opener = new NodeOpener();
  const dev = await openInput(file, opener, { readOnly: false, parentWritable: true });
  try {
    if (!(dev instanceof VhdImage) || !dev.parent) {
      throw new CliError(`${path.resolve(file)}: not a differencing VHD (${dev.format}); commit merges a differencing VHD into its parent`);
    }
    const parentName = dev.parent.name;
    let last = 0;
    const copied = await commitVhd(dev, (done, total) => {
      if (!io.progress || Date.now() - last < 100) return;
      last = Date.now();
      io.progress(`committing: ${Math.floor((done / total) * 100)}%`);
    });
    if (io.progress) io.progress('');
    io.out(`committed ${sizeText(copied * SECTOR_SIZE)} into ${parentName}; ${dev.name} is empty again`);
  } finally {
    await dev.close();
  }
  return 0;
}
