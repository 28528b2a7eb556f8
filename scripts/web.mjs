#!/usr/bin/env node
// `npm run web [-- --port P]`: builds the browser page into a static folder (web/dist) and serves it on
// 127.0.0.1. The folder is self-contained (index.html, main.js, worker.js, CSS, the default guest's
// bzImage + initramfs.cpio.gz, and SeaBIOS's bios.bin + vgabios-stdvga.bin copied from Debian's seabios
// package) and works from any static host: nothing here is needed by the page beyond plain files. The
// server answers GET/HEAD with correct MIME types, ETag/Last-Modified and single byte-range requests
// (206/416), which disk images given by URL are loaded with.
//
//   --port P        port to listen on (default 8080; 0 picks a free one)
//   --out DIR       build folder (default web/dist)
//   --files DIR     also serve DIR's files under /files/ (disk images, kernels: ?disk=files/disk.vhd)
//   --iso           also build the bootable CD (images/build-bootiso.sh: ISOLINUX + the default guest)
//                   into the folder as boot.iso, for ?bios=1&cdrom=boot.iso (rebuilt only when its
//                   inputs changed)
//   --seabios DIR   where bios.bin and vgabios-stdvga.bin are (default /usr/share/seabios)
//   --build-only    build and exit
//   --no-build      serve what is already built
import { build } from 'esbuild';
import { createServer } from 'node:http';
import { execFileSync } from 'node:child_process';
import { copyFileSync, createReadStream, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** Debian's seabios package puts its images here */
export const SEABIOS_DIR = '/usr/share/seabios';
/** the SeaBIOS files served beside the page (web/config.ts names them too) */
export const SEABIOS_FILES = ['bios.bin', 'vgabios-stdvga.bin'];

function usage(msg) {
  process.stderr.write(`web: ${msg}\nusage: npm run web -- [--port P] [--out DIR] [--files DIR] [--iso] [--seabios DIR] [--build-only | --no-build]\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { port: 8080, out: join(ROOT, 'web', 'dist'), files: null, build: true, serve: true, iso: false, seabios: SEABIOS_DIR };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) usage(`${a} needs a value`);
      return v;
    };
    if (a === '--port') {
      const v = value();
      if (!/^\d+$/.test(v) || Number(v) > 65535) usage(`--port ${v}: expected a port number 0–65535`);
      opts.port = Number(v);
    } else if (a === '--out') opts.out = resolve(value());
    else if (a === '--files') {
      opts.files = resolve(value());
      if (!existsSync(opts.files) || !statSync(opts.files).isDirectory()) usage(`--files ${opts.files}: not a folder`);
    } else if (a === '--iso') opts.iso = true;
    else if (a === '--seabios') opts.seabios = resolve(value());
    else if (a === '--build-only') opts.serve = false;
    else if (a === '--no-build') opts.build = false;
    else if (a === '--help' || a === '-h') usage('help');
    else usage(`unknown option '${a}'`);
  }
  return opts;
}

/** copies a file through a temp file and a rename, so a reader never sees half of it */
function copyAtomic(from, to) {
  const tmp = `${to}.tmp-${process.pid}`;
  copyFileSync(from, tmp);
  renameSync(tmp, to);
}

/** copies `src` to `dst` unless `dst` is already a copy of it (same size, not older) */
function copyIfChanged(src, dst) {
  const s = statSync(src);
  if (existsSync(dst)) {
    const d = statSync(dst);
    if (d.size === s.size && d.mtimeMs >= s.mtimeMs) return;
  }
  copyAtomic(src, dst);
}

/**
 * Puts Debian's SeaBIOS (bios.bin, and vgabios-stdvga.bin: the VGA's option ROM, which draws SeaBIOS's
 * screen) beside the page, for ?bios=1. Copied from the installed package at every build, never kept in
 * the repository. Returns a line to print when the package is missing (the page then says so too).
 */
export function copySeabios(out, from = SEABIOS_DIR) {
  const missing = SEABIOS_FILES.filter((f) => !existsSync(join(from, f)));
  if (missing.length) {
    return `web: SeaBIOS is not installed (${missing.map((f) => join(from, f)).join(', ')} missing; on Debian: sudo apt-get install seabios): the page cannot boot through a BIOS (?bios=1) until it is`;
  }
  for (const f of SEABIOS_FILES) copyIfChanged(join(from, f), join(out, f));
  return null;
}

/**
 * Builds the bootable CD into `out`/boot.iso with images/build-bootiso.sh (the same script and inputs as
 * test/bios-boot.test.ts), unless the one there is newer than every input. The script writes through a
 * temporary name and a rename, so an interrupted build never leaves a half-written ISO.
 */
export function buildIso(out) {
  const iso = join(out, 'boot.iso');
  const inputs = [
    join(ROOT, 'images', 'build-bootiso.sh'),
    join(ROOT, 'images', 'lib-boot.sh'),
    join(ROOT, 'images', 'default', 'bzImage'),
    join(ROOT, 'images', 'default', 'initramfs.cpio.gz'),
  ];
  for (const f of inputs) {
    if (!existsSync(f)) throw new Error(`cannot build the bootable CD: ${f} is missing (build the default guest first: images/README.md)`);
  }
  if (existsSync(iso)) {
    const at = statSync(iso).mtimeMs;
    if (inputs.every((f) => statSync(f).mtimeMs <= at)) return iso;
  }
  const work = mkdtempSync(join(tmpdir(), 'x86vm-web-iso-'));
  try {
    try {
      execFileSync(join(ROOT, 'images', 'build-bootiso.sh'), [work], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 1 << 24 });
    } catch (e) {
      const said = e.stderr ? String(e.stderr).trim().split('\n').filter(Boolean).pop() : '';
      throw new Error(`images/build-bootiso.sh failed${said ? `: ${said}` : ''}`);
    }
    copyAtomic(join(work, 'boot.iso'), iso);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return iso;
}

export async function buildWeb(out, options = {}) {
  mkdirSync(out, { recursive: true });
  const common = {
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['chrome110', 'firefox115', 'safari16.4'],
    sourcemap: true,
    logLevel: 'warning',
    legalComments: 'linked',
  };
  await Promise.all([
    build({ ...common, entryPoints: [join(ROOT, 'web', 'main.ts')], outfile: join(out, 'main.js') }),
    build({ ...common, entryPoints: [join(ROOT, 'web', 'worker.ts')], outfile: join(out, 'worker.js') }),
  ]);
  copyAtomic(join(ROOT, 'web', 'index.html'), join(out, 'index.html'));
  copyAtomic(join(ROOT, 'web', 'style.css'), join(out, 'style.css'));
  copyAtomic(join(ROOT, 'node_modules', '@xterm', 'xterm', 'css', 'xterm.css'), join(out, 'xterm.css'));
  const missing = [];
  for (const f of ['bzImage', 'initramfs.cpio.gz']) {
    const src = join(ROOT, 'images', 'default', f);
    if (!existsSync(src)) {
      missing.push(f);
      continue;
    }
    copyIfChanged(src, join(out, f));
  }
  if (missing.length) {
    process.stderr.write(`web: the default guest is not built (images/default/${missing.join(', ')} missing; see images/README.md): the page will say so\n`);
  }
  const noBios = copySeabios(out, options.seabios);
  if (noBios) process.stderr.write(`${noBios}\n`);
  if (options.iso) buildIso(out);
  writeFileSync(join(out, '.gitignore'), '*\n');
}

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.wasm': 'application/wasm',
  '.gz': 'application/gzip',
  '.iso': 'application/x-iso9660-image',
};

/** parses a Range header for a file of `size` bytes: {start, end} (inclusive), 'bad' (416), or null (whole file) */
export function parseRange(header, size) {
  if (!header) return null;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m) return /,/.test(header) && /^\s*bytes\s*=/i.test(header) ? null : 'bad'; // multiple ranges: send it whole
  let start;
  let end;
  if (m[1] === '' && m[2] === '') return 'bad';
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0) return 'bad';
    start = Math.max(0, size - n);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (m[2] !== '' && Number(m[2]) < start) return 'bad';
  }
  if (start >= size) return 'bad';
  return { start, end };
}

function sendError(res, status, text) {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** a static file server for `roots` (URL prefix → folder) */
export function createStaticServer(roots) {
  return createServer((req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      sendError(res, 405, 'method not allowed\n');
      return;
    }
    let path;
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname);
    } catch {
      sendError(res, 400, 'bad path\n');
      return;
    }
    if (path.includes('\0')) {
      sendError(res, 400, 'bad path\n');
      return;
    }
    let file = null;
    for (const [prefix, dir] of roots) {
      if (!path.startsWith(prefix)) continue;
      const rel = path.slice(prefix.length);
      const full = resolve(dir, '.' + sep + rel);
      if (full !== dir && !full.startsWith(dir + sep)) break; // outside the folder
      file = full;
      break;
    }
    if (!file) {
      sendError(res, 404, 'not found\n');
      return;
    }
    let st;
    try {
      st = statSync(file);
      if (st.isDirectory()) {
        file = join(file, 'index.html');
        st = statSync(file);
      }
    } catch {
      sendError(res, 404, 'not found\n');
      return;
    }
    const size = st.size;
    const etag = `"${size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
    const headers = {
      'content-type': MIME[extname(file).toLowerCase()] ?? 'application/octet-stream',
      'accept-ranges': 'bytes',
      etag,
      'last-modified': st.mtime.toUTCString(),
      'cache-control': 'no-cache',
      'access-control-allow-origin': '*',
      'access-control-expose-headers': 'content-range, content-length, etag, accept-ranges',
      'x-content-type-options': 'nosniff',
    };
    if (req.headers['if-none-match'] === etag && !req.headers.range) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    let range = parseRange(req.headers.range, size);
    const ifRange = req.headers['if-range'];
    if (range && range !== 'bad' && ifRange && ifRange !== etag) range = null;
    if (range === 'bad') {
      res.writeHead(416, { ...headers, 'content-range': `bytes */${size}`, 'content-length': 0 });
      res.end();
      return;
    }
    const { start, end } = range ?? { start: 0, end: size - 1 };
    const length = size === 0 ? 0 : end - start + 1;
    if (range) headers['content-range'] = `bytes ${start}-${end}/${size}`;
    headers['content-length'] = length;
    res.writeHead(range ? 206 : 200, headers);
    if (req.method === 'HEAD' || length === 0) {
      res.end();
      return;
    }
    const stream = createReadStream(file, { start, end });
    stream.on('error', () => res.destroy());
    stream.pipe(res);
  });
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.build) {
    try {
      await buildWeb(opts.out, { iso: opts.iso, seabios: opts.seabios });
    } catch (e) {
      process.stderr.write(`web: the build failed: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(1);
    }
  } else if (!existsSync(join(opts.out, 'index.html'))) {
    usage(`${opts.out} holds no built page (run without --no-build)`);
  } else if (opts.iso) {
    try {
      buildIso(opts.out);
    } catch (e) {
      process.stderr.write(`web: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(1);
    }
  }
  if (!opts.serve) {
    process.stdout.write(`web: built ${opts.out}\n`);
    return;
  }
  const roots = [];
  if (opts.files) roots.push(['/files/', opts.files]);
  roots.push(['/', opts.out]);
  const server = createStaticServer(roots);
  server.on('error', (e) => {
    process.stderr.write(`web: cannot listen on 127.0.0.1:${opts.port}: ${e.code === 'EADDRINUSE' ? 'the port is in use (try --port P)' : e.message}\n`);
    process.exit(1);
  });
  server.listen(opts.port, '127.0.0.1', () => {
    const { port } = server.address();
    process.stdout.write(`web: serving ${opts.out} at http://127.0.0.1:${port}/\n`);
    if (existsSync(join(opts.out, 'boot.iso')) && existsSync(join(opts.out, 'bios.bin'))) {
      process.stdout.write(`web: the bootable CD through SeaBIOS: http://127.0.0.1:${port}/?bios=1&cdrom=boot.iso\n`);
    }
  });
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
