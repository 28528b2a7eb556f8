/**
 * `x86vm disk`, run as users run it (a bundle of node/main.ts built into a scratch directory), judged by
 * QEMU's tools: what we create and convert passes `qemu-img compare` against its source and
 * `qemu-img check` where qemu has one (VDI); qemu-made VHD and VDI files convert to the same raw bytes as
 * qemu-img gives; differencing images, commit, damaged files, exit statuses, and locks across processes.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync, renameSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { FileStore, NodeOpener } from '../node/file-store';
import { openImage } from '../disk/detect';
import { diskMain } from '../node/disk-cli';
import { pattern, patternedRaw, qemuCompare, qemuImg, qemuInfo, qemuIo, scratchDir } from './helpers/qemu-img';

const ROOT = resolve(__dirname, '..');
const { dir, cleanup } = scratchDir('x86vm-disk-cli-');
const BIN = join(dir, 'x86vm.mjs');
const HOLDER = join(dir, 'hold-lock.mjs');
let n = 0;
const file = (name: string): string => join(dir, `${n++}-${name}`);

beforeAll(async () => {
  const common = { bundle: true, platform: 'node' as const, format: 'esm' as const, target: 'node20', logLevel: 'warning' as const };
  await build({ ...common, entryPoints: [join(ROOT, 'node', 'main.ts')], outfile: BIN });
  // a process that opens an image (read-write or read-only), says "ready", and holds it until stdin ends
  await build({
    ...common,
    stdin: {
      contents: `
        import { FileStore } from './node/file-store';
        FileStore.open(process.argv[2], { readOnly: process.argv[3] === 'ro' });
        process.stdout.write('ready\\n');
        process.stdin.resume();
        process.stdin.on('end', () => process.exit(0));
      `,
      resolveDir: ROOT,
      loader: 'ts',
    },
    outfile: HOLDER,
  });
}, 120_000);
afterAll(cleanup);

function x86vm(...args: string[]): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [BIN, 'disk', ...args], { encoding: 'utf8', timeout: 120_000 });
}

/** a one-line `x86vm: …` error and exit status 2 */
function expectUsage(r: SpawnSyncReturns<string>, re: RegExp): void {
  expect(r.status, r.stderr).toBe(2);
  expect(r.stderr).toMatch(/^x86vm: [^\n]+\n$/);
  expect(r.stderr).toMatch(re);
  expect(r.stderr).not.toMatch(/\bat .*\.(m?js|ts):\d+/);
}

function qemuFormat(fmt: string): string {
  return fmt.startsWith('vhd') ? 'vpc' : fmt.startsWith('vdi') ? 'vdi' : 'raw';
}

describe('x86vm disk: usage', () => {
  it('bad commands, options, formats and sizes are one-line errors with status 2', () => {
    expectUsage(x86vm(), /no command given/);
    expectUsage(x86vm('frob'), /unknown command 'frob'/);
    expectUsage(x86vm('create', '--format', 'qcow2', file('a'), '1M'), /unknown format 'qcow2'/);
    expectUsage(x86vm('create', '--format', 'raw', file('a'), '1000'), /1000 bytes is not a multiple of 512/);
    expectUsage(x86vm('create', '--format', 'raw', file('a'), 'lots'), /bad size 'lots'/);
    expectUsage(x86vm('create', '--format', 'raw'), /expected FILE SIZE, got nothing/);
    expectUsage(x86vm('create', '--bogus'), /unknown option '--bogus'/);
    expectUsage(x86vm('convert', 'a', 'b'), /--format is needed/);
    expectUsage(x86vm('info', join(dir, 'missing.vhd')), /missing\.vhd: no such file$/m);
    const help = x86vm('--help');
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/x86vm disk convert --format FMT IN OUT/);
  });

  it('create refuses to overwrite an existing file and leaves no temporary file behind', () => {
    const f = file('exists.img');
    writeFileSync(f, 'precious');
    expectUsage(x86vm('create', '--format', 'vhd-dynamic', f, '1M'), /exists\.img: already exists/);
    expect(readFileSync(f, 'utf8')).toBe('precious');
    expect(readdirSync(dir).filter((x) => x.includes('.tmp-'))).toEqual([]);
  });
});

describe('x86vm disk create', () => {
  for (const fmt of ['raw', 'vhd-fixed', 'vhd-dynamic', 'vdi-static', 'vdi-dynamic']) {
    it(`${fmt}: qemu-img agrees on the format and size${fmt.startsWith('vdi') ? ' and its check passes' : ''}`, () => {
      const f = file(`new.${fmt}`);
      const r = x86vm('create', '--format', fmt, f, '10G');
      expect(r.status, r.stderr).toBe(0);
      const info = qemuInfo(f, qemuFormat(fmt));
      // VHD sizes are rounded up to a whole CHS geometry, like qemu-img's
      if (fmt.startsWith('vhd')) {
        const q = file('q.vhd');
        qemuImg(['create', '-q', '-f', 'vpc', q, '10G']);
        expect(info['virtual-size']).toBe(qemuInfo(q, 'vpc')['virtual-size']);
      } else {
        expect(info['virtual-size']).toBe(10 * 1024 ** 3);
      }
      expect(statSync(f).blocks * 512).toBeLessThan(4 * 1048576); // sparse
      if (fmt.startsWith('vdi')) expect(qemuImg(['check', '-f', 'vdi', f]).status).toBe(0);
      const chk = x86vm('check', f);
      expect(chk.status, chk.stdout + chk.stderr).toBe(0);
      expect(chk.stdout).toMatch(/no problems found/);
      const inf = x86vm('info', f);
      expect(inf.status).toBe(0);
      expect(inf.stdout).toContain(`format: ${fmt}`);
      expect(inf.stdout).toContain(`virtual size: `);
      expect(inf.stdout).toContain(`(${info['virtual-size']} bytes)`);
    });
  }
});

describe('x86vm disk convert', () => {
  const srcBytes = 10 * 1048576 + 3 * 512;
  let src = '';
  let data: Uint8Array;
  beforeAll(() => {
    src = file('src.raw');
    // data with a zero hole over whole blocks of every format (2 MiB .. 6 MiB) and smaller zero runs
    data = pattern(srcBytes, 4321);
    data.fill(0, 2 * 1048576, 6 * 1048576);
    data.fill(0, 7 * 1048576 + 4096, 7 * 1048576 + 70000);
    writeFileSync(src, data);
  });

  for (const fmt of ['raw', 'vhd-fixed', 'vhd-dynamic', 'vdi-static', 'vdi-dynamic']) {
    it(`raw (10 MiB + 3 sectors, zero runs) → ${fmt}: qemu-img compare says identical; back to raw gives the bytes`, () => {
      const out = file(`out.${fmt}`);
      const r = x86vm('convert', '--format', fmt, src, out);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toBe(''); // no progress line when stderr is not a terminal
      const cmp = qemuCompare(out, qemuFormat(fmt), src, 'raw');
      expect(cmp.status, cmp.stdout + cmp.stderr).toBe(0);
      if (fmt.startsWith('vdi')) expect(qemuImg(['check', '-f', 'vdi', out]).status).toBe(0);
      // the zero blocks are left out: unallocated in dynamic images, holes in the others
      if (fmt === 'vhd-dynamic') expect(x86vm('info', out).stdout).toMatch(/blocks: 4 of 6 allocated/);
      else if (fmt === 'vdi-dynamic') expect(x86vm('info', out).stdout).toMatch(/blocks: 7 of 11 allocated/);
      else expect(statSync(out).blocks * 512).toBeLessThan(srcBytes - 3.9 * 1048576);
      expect(x86vm('check', out).status).toBe(0);
      const back = file('back.raw');
      expect(x86vm('convert', '--format', 'raw', out, back).status).toBe(0);
      const got = readFileSync(back);
      expect(got.length).toBe(qemuInfo(out, qemuFormat(fmt))['virtual-size']);
      expect(Buffer.compare(got.subarray(0, srcBytes), data)).toBe(0);
      expect(got.subarray(srcBytes).every((b) => b === 0)).toBe(true);
      expect(statSync(back).blocks * 512).toBeLessThan(srcBytes - 3.9 * 1048576); // zero blocks stay holes
    });
  }

  for (const [qfmt, opts] of [
    ['vpc', 'subformat=dynamic'],
    ['vpc', 'subformat=fixed'],
    ['vdi', 'static=off'],
    ['vdi', 'static=on'],
  ]) {
    it(`a qemu-made ${qfmt} (${opts}) converts to the raw bytes qemu-img gives`, () => {
      const img = file(`q.${qfmt}`);
      qemuImg(['convert', '-f', 'raw', '-O', qfmt, '-o', opts, src, img]);
      const ours = file('ours.raw');
      const theirs = file('theirs.raw');
      const r = x86vm('convert', '--format', 'raw', img, ours);
      expect(r.status, r.stderr).toBe(0);
      qemuImg(['convert', '-f', qfmt, '-O', 'raw', img, theirs]);
      expect(Buffer.compare(readFileSync(ours), readFileSync(theirs))).toBe(0);
    });
  }

  it('a dynamic VHD past 4 GiB converts to VHD and raw; qemu-img compare agrees', () => {
    const big = file('big.vhd');
    qemuImg(['create', '-q', '-f', 'vpc', '-o', 'subformat=dynamic', big, '4200M']);
    qemuIo(big, 'vpc', ['write -P 0x5e 4295032832 1048576', 'write -P 0x21 1048576 4096']);
    for (const fmt of ['vhd-dynamic', 'raw']) {
      const out = file(`big-out.${fmt}`);
      const t0 = Date.now();
      const r = x86vm('convert', '--format', fmt, big, out);
      expect(r.status, r.stderr).toBe(0);
      expect(Date.now() - t0).toBeLessThan(20_000);
      expect(qemuCompare(out, qemuFormat(fmt), big, 'vpc').status).toBe(0);
      expect(statSync(out).blocks * 512).toBeLessThan(16 * 1048576);
    }
  });

  it('shows progress on a terminal', async () => {
    const lines: string[] = [];
    const progress: string[] = [];
    const out = file('progress.vhd');
    const code = await diskMain(['convert', '--format', 'vhd-dynamic', src, out], {
      out: (l) => lines.push(l),
      err: (l) => lines.push(l),
      progress: (t) => progress.push(t),
    });
    expect(code).toBe(0);
    expect(progress).toContain(`converting: 100% (10 of 10 MiB)`);
    expect(progress[progress.length - 1]).toBe('');
  });

  it('IN = OUT and an existing OUT are refused', () => {
    expectUsage(x86vm('convert', '--format', 'raw', src, src), /the same file/);
    const existing = file('there.raw');
    writeFileSync(existing, 'x');
    expectUsage(x86vm('convert', '--format', 'raw', src, existing), /there\.raw: already exists/);
  });
});

describe('x86vm disk: differencing images and commit', () => {
  it('create --parent, write through the child, info, convert the merged view, commit', async () => {
    const raw = file('base.raw');
    const base = patternedRaw(raw, 6 * 1048576, 555);
    const parent = file('parent.vhd');
    expect(x86vm('convert', '--format', 'vhd-dynamic', raw, parent).status).toBe(0);
    const parentBytes = readFileSync(parent);
    const child = file('child.vhd');
    const r = x86vm('create', '--parent', parent, child);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/vhd-differencing over/);

    // the guest's writes, through our API
    const opener = new NodeOpener();
    const dev = await openImage(FileStore.open(child), opener);
    const model = new Uint8Array(dev.sectors * 512);
    model.set(base);
    for (const [s, c, seed] of [[0, 1, 1], [4095, 2, 2], [9000, 100, 3]]) {
      const d = pattern(c * 512, seed);
      await dev.write(s, d);
      model.set(d, s * 512);
    }
    await dev.close();
    expect(Buffer.compare(readFileSync(parent), parentBytes)).toBe(0);

    const info = x86vm('info', child);
    expect(info.status).toBe(0);
    expect(info.stdout).toContain('format: vhd-differencing');
    expect(info.stdout).toContain(`parent: ${parent} (vhd-dynamic,`);
    expect(info.stdout).toMatch(/blocks: 3 of 4 allocated/);
    expect(x86vm('check', child).status).toBe(0);

    const merged = file('merged.raw');
    expect(x86vm('convert', '--format', 'raw', child, merged).status).toBe(0);
    expect(Buffer.compare(readFileSync(merged), Buffer.from(model))).toBe(0);

    const c = x86vm('commit', child);
    expect(c.status, c.stderr).toBe(0);
    expect(c.stdout).toMatch(/committed 51.5 KiB \(52736 bytes\) into .*parent\.vhd; .*child\.vhd is empty again/);
    const want = file('want.raw');
    writeFileSync(want, model);
    expect(qemuCompare(parent, 'vpc', want, 'raw').status).toBe(0);
    expect(x86vm('info', child).stdout).toMatch(/blocks: 0 of 4 allocated/);
    const after = file('after.raw');
    expect(x86vm('convert', '--format', 'raw', child, after).status).toBe(0);
    expect(Buffer.compare(readFileSync(after), Buffer.from(model))).toBe(0);
    expect(x86vm('check', child).status).toBe(0);
    expectUsage(x86vm('commit', parent), /not a differencing VHD \(vhd-dynamic\)/);
  });
});

describe('x86vm disk check on damaged images', () => {
  function dynamicVhd(): string {
    const raw = file('d.raw');
    patternedRaw(raw, 5 * 1048576, 9);
    const vhd = file('d.vhd');
    expect(x86vm('convert', '--format', 'vhd-dynamic', raw, vhd).status).toBe(0);
    return vhd;
  }

  const cases: [string, (f: string) => void, RegExp][] = [
    ['a truncated file', (f) => writeFileSync(f, readFileSync(f).subarray(0, statSync(f).size - 1000)), /truncated or damaged: no VHD footer at the end of the file/],
    [
      'a flipped checksum byte',
      (f) => {
        const b = readFileSync(f);
        b[b.length - 512 + 65] ^= 1;
        writeFileSync(f, b);
      },
      /bad footer checksum/,
    ],
    [
      'a BAT entry past the end of the file',
      (f) => {
        const b = readFileSync(f);
        b.writeUInt32BE(0x7fffff00, 1536 + 4);
        writeFileSync(f, b);
      },
      /BAT entry for block 1 points past the end of the file/,
    ],
  ];
  for (const [what, damage, re] of cases) {
    it(`${what}: check lists it (status 1), info refuses it (status 2), the file is unchanged`, () => {
      const f = dynamicVhd();
      damage(f);
      const before = readFileSync(f);
      const r = x86vm('check', f);
      expect(r.status, r.stdout + r.stderr).toBe(1);
      expect(r.stdout.split('\n')[0]).toMatch(new RegExp(`^${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `));
      expect(r.stdout).toMatch(re);
      expect(r.stdout).toMatch(/\d+ problems? found\n$/);
      expectUsage(x86vm('info', f), re);
      expectUsage(x86vm('convert', '--format', 'raw', f, file('never.raw')), re);
      expect(Buffer.compare(readFileSync(f), before)).toBe(0);
    });
  }

  it('a differencing image whose parent is gone', () => {
    const parent = dynamicVhd();
    const child = file('lost-child.vhd');
    expect(x86vm('create', '--parent', parent, child).status).toBe(0);
    renameSync(parent, `${parent}.moved`);
    const before = readFileSync(child);
    const r = x86vm('check', child);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/lost-child\.vhd: parent image not found \(tried .*d\.vhd\)/);
    expectUsage(x86vm('info', child), /lost-child\.vhd: parent image not found/);
    expect(Buffer.compare(readFileSync(child), before)).toBe(0);
  });
});

describe('x86vm disk: image locks across processes', () => {
  function hold(path: string, mode: 'rw' | 'ro'): Promise<ChildProcess> {
    return new Promise((resolveHold, reject) => {
      const p = spawn(process.execPath, [HOLDER, path, mode], { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      p.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('ready')) resolveHold(p);
      });
      p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      p.on('exit', (code) => reject(new Error(`holder exited ${code}: ${err}`)));
    });
  }
  const ended = (p: ChildProcess): Promise<void> => new Promise((r) => (p.exitCode !== null || p.signalCode !== null ? r() : p.on('exit', () => r())));

  it('a file open read-write elsewhere is refused, naming the PID; readers share; locks go with the process', async () => {
    const img = file('locked.vhd');
    expect(x86vm('create', '--format', 'vhd-dynamic', img, '8M').status).toBe(0);

    const writer = await hold(img, 'rw');
    expectUsage(x86vm('info', img), new RegExp(`locked\\.vhd: in use \\(read-write\\) by x86vm process ${writer.pid}`));
    expectUsage(x86vm('check', img), new RegExp(`in use \\(read-write\\) by x86vm process ${writer.pid}`));
    expect(existsSync(`${img}.lock`)).toBe(true);
    writer.stdin!.end(); // exits without closing the file: the exit hook removes the lock
    await ended(writer);
    expect(existsSync(`${img}.lock`)).toBe(false);

    const reader = await hold(img, 'ro');
    expect(x86vm('info', img).status).toBe(0);
    const child = file('locked-child.vhd');
    expect(x86vm('create', '--parent', img, child).status).toBe(0); // opens the parent read-only
    expectUsage(x86vm('commit', child), new RegExp(`locked\\.vhd: in use \\(read-only\\) by x86vm process ${reader.pid}`));
    reader.kill('SIGKILL');
    await ended(reader);
    // the dead reader's lock file is still there, but stale: taken over
    expect(readdirSync(dir).some((f) => f.includes('locked.vhd.lock.ro-'))).toBe(true);
    const c = x86vm('commit', child);
    expect(c.status, c.stderr).toBe(0);

    const killed = await hold(img, 'rw');
    killed.kill('SIGKILL');
    await ended(killed);
    expect(existsSync(`${img}.lock`)).toBe(true);
    const r = x86vm('check', img);
    expect(r.status, r.stderr).toBe(0);
  });
});
