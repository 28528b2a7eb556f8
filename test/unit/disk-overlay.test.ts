/**
 * The copy-on-write overlay: writes stay in memory, reads merge them over the base, the base is never
 * written; the written sectors can be listed and restored (for snapshots).
 */
import { describe, it, expect } from 'vitest';
import { MemoryStore } from '../../disk/block';
import { openRaw } from '../../disk/raw';
import { CowOverlay } from '../../disk/overlay';
import { createVhd } from '../../disk/vhd';
import { pattern } from '../helpers/qemu-img';

function base(sectors: number, readOnly = true) {
  const data = pattern(sectors * 512, 42);
  const store = new MemoryStore('base.img', data.slice(), readOnly);
  return { dev: openRaw(store, { readOnly }), store, data };
}

describe('CowOverlay', () => {
  it('merges partial-cluster writes over the base and never writes the base', async () => {
    const { dev, store, data } = base(64);
    const ov = new CowOverlay(dev);
    expect(ov.sectors).toBe(64);
    expect(ov.readOnly).toBe(false);
    const model = data.slice();
    const w = (s: number, c: number, v: number) => {
      const d = new Uint8Array(c * 512).fill(v);
      model.fill(v, s * 512, (s + c) * 512);
      return ov.write(s, d);
    };
    await w(3, 1, 0x11); // inside a cluster
    await w(7, 3, 0x22); // across a cluster boundary
    await w(16, 8, 0x33); // a whole cluster
    await w(63, 1, 0x44); // the last sector
    await w(3, 1, 0x55); // rewrite
    for (const [s, c] of [[0, 64], [2, 3], [6, 5], [16, 8], [15, 10], [63, 1]]) {
      const b = new Uint8Array(c * 512);
      await ov.read(s, b);
      expect(Buffer.compare(b, model.subarray(s * 512, (s + c) * 512)), `read ${s}+${c}`).toBe(0);
    }
    expect(Buffer.compare(store.bytes(), data)).toBe(0);
    expect(ov.writtenSectors).toBe(1 + 3 + 8 + 1);
    await expect(ov.read(60, new Uint8Array(5 * 512))).rejects.toThrow(/base\.img: request past the end/);
  });

  it('a fully written range is served without reading the base', async () => {
    const { dev } = base(32);
    let baseReads = 0;
    const counting = Object.assign(Object.create(Object.getPrototypeOf(dev)), dev, {
      read: (s: number, b: Uint8Array) => {
        baseReads++;
        return dev.read(s, b);
      },
    });
    const ov = new CowOverlay(counting);
    await ov.write(8, new Uint8Array(8 * 512).fill(1));
    await ov.read(9, new Uint8Array(6 * 512));
    expect(baseReads).toBe(0);
    await ov.read(7, new Uint8Array(2 * 512));
    expect(baseReads).toBe(1);
  });

  it('random writes and reads agree with a model', async () => {
    const { dev, data } = base(300);
    const ov = new CowOverlay(dev);
    const model = data.slice();
    let x = 12345;
    const rnd = (m: number) => {
      x = (x * 1103515245 + 12345) >>> 0;
      return (x >>> 8) % m;
    };
    for (let i = 0; i < 400; i++) {
      const s = rnd(300);
      const c = 1 + rnd(Math.min(20, 300 - s));
      if (rnd(2)) {
        const d = pattern(c * 512, i + 1000);
        await ov.write(s, d);
        model.set(d, s * 512);
      } else {
        const b = new Uint8Array(c * 512);
        await ov.read(s, b);
        expect(Buffer.compare(b, model.subarray(s * 512, (s + c) * 512)), `step ${i}`).toBe(0);
      }
    }
  });

  it('lists written runs and restores them into a fresh overlay; clear drops them', async () => {
    const { dev, data } = base(64);
    const ov = new CowOverlay(dev);
    await ov.write(5, new Uint8Array(4 * 512).fill(1)); // 5..8: across clusters, one run
    await ov.write(9, new Uint8Array(512).fill(2)); // joins the run: 5..9
    await ov.write(30, new Uint8Array(512).fill(3));
    const runs = ov.writtenRuns();
    expect(runs.map((r) => [r.sector, r.data.length / 512])).toEqual([[5, 5], [30, 1]]);
    expect(runs[0].data[4 * 512]).toBe(2);
    // the runs are copies: later writes do not change them
    await ov.write(5, new Uint8Array(512).fill(9));
    expect(runs[0].data[0]).toBe(1);

    const ov2 = new CowOverlay(base(64).dev);
    ov2.restore(runs);
    const a = new Uint8Array(64 * 512);
    await ov2.read(0, a);
    const want = data.slice();
    want.fill(1, 5 * 512, 9 * 512);
    want.fill(2, 9 * 512, 10 * 512);
    want.fill(3, 30 * 512, 31 * 512);
    expect(Buffer.compare(a, want)).toBe(0);
    expect(() => ov2.restore([{ sector: 63, data: new Uint8Array(1024) }])).toThrow(/does not fit the disk/);
    ov2.clear();
    await ov2.read(0, a);
    expect(Buffer.compare(a, data)).toBe(0);
  });

  it('works over a dynamic VHD without allocating anything in it', async () => {
    const store = new MemoryStore('d.vhd');
    const vhd = await createVhd(store, { sectors: 8192, type: 'dynamic' });
    const before = store.bytes().slice();
    const ov = new CowOverlay(vhd);
    await ov.write(4000, new Uint8Array(512 * 200).fill(7));
    const b = new Uint8Array(512 * 3);
    await ov.read(3999, b);
    expect([b[0], b[512], b[1024]]).toEqual([0, 7, 7]);
    await ov.flush();
    expect(vhd.allocatedBlocks()).toBe(0);
    expect(Buffer.compare(store.bytes(), before)).toBe(0);
  });
});
