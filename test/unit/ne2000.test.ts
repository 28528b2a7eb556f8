/**
 * NE2000 (RTL8029) driven through its I/O BAR the way Linux's ne2k-pci + 8390 do: probe (reset port,
 * counters clear on read), the PROM read in word mode, NS8390_init, remote DMA writes and the transmit,
 * receive into the ring with the 4-byte header, wrap at PSTOP, the address filter (unicast, broadcast,
 * multicast hash, promiscuous), backlog and overflow, loopback, interrupts through INTx, and a snapshot.
 */
import { describe, expect, it } from 'vitest';
import { createPc, type Pc } from '../../core/pc';
import { crc32, multicastHashIndex, netPair, type NetPort } from '../../core/net';
import { PCI_BAR0, PCI_COMMAND } from '../../devices/pci';
import {
  addNe2000,
  BACKLOG_FRAMES,
  ISR_OVW,
  ISR_PRX,
  ISR_PTX,
  ISR_RDC,
  ISR_RST,
  Ne2000,
} from '../../devices/ne2000';

const IO = 0xc100;
const MAC = Uint8Array.of(0x52, 0x54, 0x00, 0xab, 0xcd, 0xef);
// the 8390 driver's layout: TX pages 0x40–0x4B, ring 0x4C–0x80
const TX_START = 0x40;
const RX_START = 0x4c;
const STOP = 0x80;

function setup(): { pc: Pc; nic: Ne2000; far: NetPort; received: Uint8Array[] } {
  let nic!: Ne2000;
  const pc = createPc({ memSize: 16 << 20, deterministic: true, devices: [(p) => void (nic = addNe2000(p, { mac: MAC }))] });
  pc.prepareDirectBoot();
  const df = nic.devfn;
  pc.pci!.bus.configWrite(df, PCI_BAR0, IO, 4);
  pc.pci!.bus.configWrite(df, PCI_COMMAND, 0x0005, 2);
  const [a, b] = netPair();
  nic.attach(a);
  const received: Uint8Array[] = [];
  b.onFrame((f) => received.push(f.slice()));
  return { pc, nic, far: b, received };
}

const out8 = (pc: Pc, r: number, v: number): void => pc.io.out8(IO + r, v);
const in8 = (pc: Pc, r: number): number => pc.io.in8(IO + r);

/** what NS8390_init(dev, 1) does, then the multicast filter of do_set_multicast_list */
function init8390(pc: Pc, rcr = 0x04, mar: number[] = [0, 0, 0, 0, 0, 0, 0, 0]): void {
  out8(pc, 0, 0x21); // page 0, no DMA, stop
  out8(pc, 0x0e, 0x49); // DCR: word transfers, normal operation, FIFO threshold
  out8(pc, 0x0a, 0);
  out8(pc, 0x0b, 0);
  out8(pc, 0x0c, 0x20); // RCR: monitor
  out8(pc, 0x0d, 0x02); // TCR: internal loopback
  out8(pc, 0x04, TX_START);
  out8(pc, 0x01, RX_START);
  out8(pc, 0x03, STOP - 1); // BNRY
  out8(pc, 0x02, STOP);
  out8(pc, 0x07, 0xff);
  out8(pc, 0x0f, 0x00);
  out8(pc, 0, 0x61); // page 1
  for (let i = 0; i < 6; i++) out8(pc, 1 + i, MAC[i]);
  out8(pc, 7, RX_START); // CURR
  for (let i = 0; i < 8; i++) out8(pc, 8 + i, mar[i]);
  out8(pc, 0, 0x21);
  out8(pc, 0x07, 0xff);
  out8(pc, 0x0f, 0x3f); // IMR: everything
  out8(pc, 0, 0x22); // start
  out8(pc, 0x0d, 0x00); // TCR: normal
  out8(pc, 0x0c, rcr);
}

/** remote DMA write of `data` at `addr` with 32-bit outs, as ne2k_pci_block_output */
function dmaWrite(pc: Pc, addr: number, data: Uint8Array): void {
  const count = (data.length + 1) & ~1;
  out8(pc, 0, 0x22);
  out8(pc, 0x0a, count & 0xff);
  out8(pc, 0x0b, count >> 8);
  out8(pc, 0x08, addr & 0xff);
  out8(pc, 0x09, addr >> 8);
  out8(pc, 0, 0x12); // remote write, start
  const padded = new Uint8Array(count + 4);
  padded.set(data);
  let i = 0;
  for (; i + 4 <= count; i += 4) pc.io.out32(IO + 0x10, padded[i] | (padded[i + 1] << 8) | (padded[i + 2] << 16) | (padded[i + 3] << 24));
  if (i < count) pc.io.out16(IO + 0x10, padded[i] | (padded[i + 1] << 8));
}

/** remote DMA read with 16-bit ins, as the 8390 header read */
function dmaRead(pc: Pc, addr: number, count: number): Uint8Array {
  out8(pc, 0, 0x22);
  out8(pc, 0x0a, count & 0xff);
  out8(pc, 0x0b, count >> 8);
  out8(pc, 0x08, addr & 0xff);
  out8(pc, 0x09, addr >> 8);
  out8(pc, 0, 0x0a); // remote read, start
  const out = new Uint8Array(count + 1);
  for (let i = 0; i < count; i += 2) {
    const w = pc.io.in16(IO + 0x10);
    out[i] = w & 0xff;
    out[i + 1] = w >> 8;
  }
  return out.subarray(0, count);
}

function frame(dst: ArrayLike<number>, len: number, seed: number): Uint8Array {
  const f = new Uint8Array(len);
  f.set(dst, 0);
  f.set([0x52, 0x54, 0x00, 0x11, 0x22, 0x33], 6);
  f[12] = 0x08;
  f[13] = 0x00;
  for (let i = 14; i < len; i++) f[i] = (i * 7 + seed) & 0xff;
  return f;
}

/** ei_receive: takes every frame from the ring (header, data), moves BNRY, returns the frames */
function drainRing(pc: Pc): { status: number; data: Uint8Array }[] {
  const got: { status: number; data: Uint8Array }[] = [];
  for (;;) {
    out8(pc, 0, 0x62);
    const curr = in8(pc, 7);
    out8(pc, 0, 0x22);
    let page = in8(pc, 3) + 1;
    if (page >= STOP) page = RX_START;
    if (page === curr) break;
    const hdr = dmaRead(pc, page << 8, 4);
    const len = (hdr[2] | (hdr[3] << 8)) - 4;
    got.push({ status: hdr[0], data: dmaRead(pc, (page << 8) + 4, len) });
    out8(pc, 0x03, hdr[1] - 1); // as ei_receive: PSTART - 1 when the next frame is at PSTART
  }
  out8(pc, 0x07, ISR_PRX | 0x04);
  return got;
}

const tick = (): Promise<void> => new Promise((r) => queueMicrotask(r));

describe('NE2000 (RTL8029)', () => {
  it('answers the ne2k-pci probe: PCI IDs, reset port, counters that clear on read, RTL8029 ID, PROM in word mode', () => {
    const { pc, nic } = setup();
    expect(nic.config[0] | (nic.config[1] << 8)).toBe(0x10ec);
    expect(nic.config[2] | (nic.config[3] << 8)).toBe(0x8029);
    expect(nic.config[0x0b]).toBe(0x02); // network controller
    expect(in8(pc, 0)).not.toBe(0xff);
    out8(pc, 0x07, 0xff);
    out8(pc, 0x18, in8(pc, 0x18)); // reset
    expect(in8(pc, 0x07) & ISR_RST).toBe(ISR_RST);
    // page 1 offset 0x0D is MAR5, page 0 offset 0x0D the tally counter (cleared by reading)
    out8(pc, 0, 0x61);
    out8(pc, 0x0d, 0xff);
    out8(pc, 0, 0x21);
    in8(pc, 0x0d);
    expect(in8(pc, 0x0d)).toBe(0);
    expect([in8(pc, 0x0a), in8(pc, 0x0b)]).toEqual([0x50, 0x43]);
    // the PROM as ne2k-pci reads it: word mode, 32 byte reads of the data port, each advancing 2
    out8(pc, 0x0e, 0x49);
    out8(pc, 0x0a, 32);
    out8(pc, 0x0b, 0);
    out8(pc, 0x08, 0);
    out8(pc, 0x09, 0);
    out8(pc, 0, 0x0a);
    const prom: number[] = [];
    for (let i = 0; i < 32; i++) prom.push(in8(pc, 0x10));
    expect(prom.slice(0, 6)).toEqual(Array.from(MAC));
    expect(prom.slice(14, 16)).toEqual([0x57, 0x57]);
    expect(in8(pc, 0x07) & ISR_RDC).toBe(ISR_RDC);
    // the MAC reads back through page 1 once the driver has written it
    init8390(pc);
    out8(pc, 0, 0x62);
    expect([1, 2, 3, 4, 5, 6].map((r) => in8(pc, r))).toEqual(Array.from(MAC));
    expect(in8(pc, 7)).toBe(RX_START);
    out8(pc, 0, 0x22);
  });

  it('transmits from the TX pages: remote DMA write (RDC), TXP, then PTX and an interrupt after the transmit time', async () => {
    const { pc, nic, received } = setup();
    init8390(pc);
    const f = frame([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 99, 3);
    dmaWrite(pc, TX_START << 8, f);
    expect(in8(pc, 0x07) & ISR_RDC).toBe(ISR_RDC);
    out8(pc, 0x07, ISR_RDC);
    expect(nic.irqLevel).toBe(false);
    out8(pc, 0x04, TX_START);
    out8(pc, 0x05, f.length);
    out8(pc, 0x06, 0);
    out8(pc, 0, 0x26); // start + TXP
    expect(in8(pc, 0) & 0x04).toBe(0x04);
    await tick();
    expect(received.length).toBe(1);
    expect(Array.from(received[0])).toEqual(Array.from(f));
    expect(in8(pc, 0x07) & ISR_PTX).toBe(0);
    pc.clock.advance(100_000);
    pc.clock.runDue();
    expect(in8(pc, 0x07) & ISR_PTX).toBe(ISR_PTX);
    expect(in8(pc, 0x04) & 1).toBe(1); // TSR.PTX
    expect(in8(pc, 0) & 0x04).toBe(0);
    expect(nic.irqLevel).toBe(true);
    out8(pc, 0x07, ISR_PTX);
    expect(nic.irqLevel).toBe(false);
  });

  it('receives into the ring: header, padding to 60 bytes, wrap at PSTOP, filtering by MAC, broadcast, multicast hash and promiscuous mode', async () => {
    const { pc, nic, far } = setup();
    // multicast filter with the bit of 01:00:5e:00:00:01 set
    const mcast = Uint8Array.of(0x01, 0x00, 0x5e, 0x00, 0x00, 0x01);
    const idx = multicastHashIndex(mcast);
    const mar = [0, 0, 0, 0, 0, 0, 0, 0];
    mar[idx >> 3] |= 1 << (idx & 7);
    init8390(pc, 0x0c, mar); // AB | AM
    const mine = frame(MAC, 42, 1); // an ARP-sized frame: padded
    const other = frame([0x52, 0x54, 0, 0, 0, 9], 100, 2);
    const bcast = frame([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 300, 3);
    const mc = frame(mcast, 80, 4);
    const mcOther = frame([0x01, 0x00, 0x5e, 0x00, 0x00, 0x02], 80, 5);
    for (const f of [mine, other, bcast, mc, mcOther]) far.send(f);
    await tick();
    expect(nic.irqLevel).toBe(true);
    expect(in8(pc, 0x07) & ISR_PRX).toBe(ISR_PRX);
    const got = drainRing(pc);
    const idx2 = multicastHashIndex(mcOther);
    const expected = [mine, bcast, mc, ...(idx2 === idx ? [mcOther] : [])];
    expect(got.length).toBe(expected.length);
    expect(got[0].data.length).toBe(60);
    expect(Array.from(got[0].data.subarray(0, 42))).toEqual(Array.from(mine));
    expect(got[0].data.subarray(42).every((b) => b === 0)).toBe(true);
    expect(got[0].status & 0x21).toBe(0x01);
    expect(Array.from(got[1].data)).toEqual(Array.from(bcast));
    expect(got[1].status & 0x20).toBe(0x20); // physical/multicast bit
    expect(Array.from(got[2].data)).toEqual(Array.from(mc));
    expect(nic.irqLevel).toBe(false);
    // enough full-size frames to wrap around PSTOP several times, each read back intact
    for (let round = 0; round < 12; round++) {
      const big = frame(MAC, 1514, round);
      far.send(big);
      await tick();
      const g = drainRing(pc);
      expect(g.length).toBe(1);
      expect(Array.from(g[0].data)).toEqual(Array.from(big));
    }
    // promiscuous: the frame for another MAC comes in too
    out8(pc, 0x0c, 0x1c);
    far.send(other);
    await tick();
    const p = drainRing(pc);
    expect(p.length).toBe(1);
    expect(Array.from(p[0].data)).toEqual(Array.from(other));
  });

  it('keeps frames in a backlog while the ring is full, drains it as BNRY moves, and reports overflow when that is full too', async () => {
    const { pc, nic, far } = setup();
    init8390(pc);
    const frames: Uint8Array[] = [];
    for (let i = 0; i < 40; i++) frames.push(frame(MAC, 1000, i));
    for (const f of frames) far.send(f);
    await tick();
    expect(nic.backlogLength).toBeGreaterThan(0);
    const got: Uint8Array[] = [];
    for (let i = 0; i < 20 && got.length < 40; i++) for (const g of drainRing(pc)) got.push(g.data);
    expect(got.length).toBe(40);
    got.forEach((g, i) => expect(Array.from(g)).toEqual(Array.from(frames[i])));
    // now more than ring + backlog can hold: OVW, missed-packet tally, reception off until acknowledged
    for (let i = 0; i < BACKLOG_FRAMES + 40; i++) far.send(frame(MAC, 1000, i));
    await tick();
    expect(in8(pc, 0x07) & ISR_OVW).toBe(ISR_OVW);
    expect(in8(pc, 0x0f)).toBeGreaterThan(0); // CNTR2
    expect(nic.counters.lost).toBeGreaterThan(0);
    const held = drainRing(pc).length;
    expect(held).toBeGreaterThan(0);
    out8(pc, 0x07, ISR_OVW);
    let after = 0;
    for (let i = 0; i < 40; i++) after += drainRing(pc).length;
    expect(held + after).toBe(BACKLOG_FRAMES + 40 - nic.counters.lost);
  });

  it('keeps PRX set when the driver acknowledges it with frames still unread in the ring', async () => {
    const { pc, far, nic } = setup();
    init8390(pc);
    for (let i = 0; i < 6; i++) far.send(frame(MAC, 200, i));
    await tick();
    // read one frame only, as ei_receive does when it stops at its per-call limit, then acknowledge
    const hdr = dmaRead(pc, RX_START << 8, 4);
    out8(pc, 0x03, hdr[1] - 1);
    out8(pc, 0x07, ISR_PRX);
    expect(in8(pc, 0x07) & ISR_PRX).toBe(ISR_PRX);
    expect(nic.irqLevel).toBe(true);
    const rest = drainRing(pc);
    expect(rest.length).toBe(5);
    expect(in8(pc, 0x07) & ISR_PRX).toBe(0);
    expect(nic.irqLevel).toBe(false);
  });

  it('loops frames back to itself in internal loopback mode, and drops everything while stopped', async () => {
    const { pc, received, far, nic } = setup();
    init8390(pc);
    out8(pc, 0x0d, 0x02); // TCR: internal loopback
    const f = frame(MAC, 64, 9);
    dmaWrite(pc, TX_START << 8, f);
    out8(pc, 0x05, f.length);
    out8(pc, 0x06, 0);
    out8(pc, 0, 0x26);
    await tick();
    expect(received.length).toBe(0);
    out8(pc, 0x0d, 0x00);
    const g = drainRing(pc);
    expect(g.length).toBe(1);
    expect(Array.from(g[0].data)).toEqual(Array.from(f));
    out8(pc, 0, 0x21); // stop
    expect(in8(pc, 0x07) & ISR_RST).toBe(ISR_RST);
    far.send(frame(MAC, 64, 1));
    await tick();
    expect(nic.backlogLength).toBe(0);
    out8(pc, 0, 0x22);
    expect(drainRing(pc).length).toBe(0);
  });

  it('hashes multicast addresses as the DP8390 does (top 6 bits of the MSB-first CRC)', () => {
    // QEMU/FreeBSD's bit-serial CRC, written out independently
    const beHash = (mac: number[]): number => {
      let crc = 0xffffffff;
      for (const byte of mac) {
        let b = byte;
        for (let j = 0; j < 8; j++) {
          const carry = ((crc >>> 31) & 1) ^ (b & 1);
          crc = (crc << 1) >>> 0;
          b >>= 1;
          if (carry) crc = ((crc ^ 0x04c11db6) | carry) >>> 0;
        }
      }
      return crc >>> 26;
    };
    for (const mac of [[1, 0, 0x5e, 0, 0, 1], [0x33, 0x33, 0, 0, 0, 1], [0xff, 0xff, 0xff, 0xff, 0xff, 0xff], [1, 0x80, 0xc2, 0, 0, 0]]) {
      expect(multicastHashIndex(Uint8Array.from(mac))).toBe(beHash(mac));
    }
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
  });

  it('saves and restores registers, packet memory, the backlog and a transmission in flight', async () => {
    const a = setup();
    init8390(a.pc);
    for (let i = 0; i < 30; i++) a.far.send(frame(MAC, 1200, i));
    await tick();
    const f = frame([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 70, 1);
    dmaWrite(a.pc, TX_START << 8, f);
    out8(a.pc, 0x05, f.length);
    out8(a.pc, 0x06, 0);
    out8(a.pc, 0, 0x26);
    const state = JSON.parse(JSON.stringify(a.nic.saveState()));
    const b = setup();
    b.nic.loadState(state);
    expect(b.nic.backlogLength).toBe(a.nic.backlogLength);
    b.pc.clock.advance(100_000);
    b.pc.clock.runDue();
    expect(in8(b.pc, 0x07) & ISR_PTX).toBe(ISR_PTX);
    const got = [...drainRing(b.pc)];
    for (let i = 0; i < 10; i++) got.push(...drainRing(b.pc));
    expect(got.length).toBe(30);
    got.forEach((g, i) => expect(Array.from(g.data)).toEqual(Array.from(frame(MAC, 1200, i))));
  });
});
