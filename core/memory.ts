/**
 * Physical memory: RAM in one ArrayBuffer, plus a per-4 KiB-page table over the whole 4 GiB physical
 * address space that says what each page is (RAM, ROM shadowed in RAM, MMIO, ROM outside RAM, nothing).
 * The CPU's TLB only caches RAM (and read-only ROM-in-RAM) pages for its fast path; everything else goes
 * through read8/write8/… here.
 */

export const enum PageKind {
  /** ordinary RAM: fast read and write */
  Ram = 0,
  /** ROM copied into RAM (below 1 MiB): fast read, writes ignored */
  RomInRam = 1,
  /** a device's MMIO range (handler in pageHandler) */
  Mmio = 2,
  /** nothing there: reads give all ones, writes vanish */
  None = 3,
}

export interface MmioHandler {
  readonly name: string;
  read8(addr: number): number;
  write8(addr: number, value: number): void;
  read16?(addr: number): number;
  write16?(addr: number, value: number): void;
  read32?(addr: number): number;
  write32?(addr: number, value: number): void;
}

const PAGE_COUNT = 1 << 20;
export const MAX_RAM = 2048 * 1024 * 1024 - 64 * 1024 * 1024; // keep RAM indexes positive int32

export class Memory {
  readonly ramSize: number;
  readonly mem8: Uint8Array;
  readonly mem16: Uint16Array;
  readonly mem32: Int32Array;
  /** PageKind for each 4 KiB physical page */
  readonly pageKind = new Uint8Array(PAGE_COUNT);
  /** index into handlers[] for Mmio pages */
  readonly pageHandler = new Uint16Array(PAGE_COUNT);
  readonly handlers: MmioHandler[] = [];
  /** address mask applied by the A20 gate: 0xFFEFFFFF when the gate is closed */
  a20Mask = -1;
  /** called when the memory map or the A20 gate changes, so the CPU can flush its TLB */
  onMapChange: () => void = () => {};

  constructor(ramSize: number) {
    if (!(ramSize >= 1024 * 1024) || ramSize > MAX_RAM || ramSize % 4096 !== 0) {
      throw new RangeError(`RAM size must be a multiple of 4 KiB between 1 MiB and ${MAX_RAM >>> 20} MiB`);
    }
    this.ramSize = ramSize;
    const buf = new ArrayBuffer(ramSize);
    this.mem8 = new Uint8Array(buf);
    this.mem16 = new Uint16Array(buf);
    this.mem32 = new Int32Array(buf);
    const ramPages = ramSize >>> 12;
    this.pageKind.fill(PageKind.None);
    this.pageKind.fill(PageKind.Ram, 0, ramPages);
  }

  setA20(enabled: boolean): void {
    const mask = enabled ? -1 : ~(1 << 20);
    if (mask !== this.a20Mask) {
      this.a20Mask = mask;
      this.onMapChange();
    }
  }

  get a20Enabled(): boolean {
    return this.a20Mask === -1;
  }

  /** Maps a device's MMIO range (page granular). Overlaps with other MMIO ranges are an error. */
  mapMmio(base: number, size: number, handler: MmioHandler): void {
    if ((base & 0xfff) !== 0 || (size & 0xfff) !== 0 || size <= 0) {
      throw new RangeError(`MMIO range of ${handler.name} must be 4 KiB aligned`);
    }
    let idx = this.handlers.indexOf(handler);
    if (idx < 0) {
      idx = this.handlers.length;
      this.handlers.push(handler);
    }
    const first = base >>> 12;
    const count = size >>> 12;
    for (let p = first; p < first + count; p++) {
      if (this.pageKind[p] === PageKind.Mmio) {
        const other = this.handlers[this.pageHandler[p]];
        throw new Error(`MMIO range of ${handler.name} at 0x${(p * 4096).toString(16)} overlaps ${other.name}`);
      }
      this.pageKind[p] = PageKind.Mmio;
      this.pageHandler[p] = idx;
    }
    this.onMapChange();
  }

  /** Unmaps an MMIO range: the pages go back to RAM (below ramSize) or to nothing. */
  unmapMmio(base: number, size: number): void {
    const first = base >>> 12;
    const count = size >>> 12;
    const ramPages = this.ramSize >>> 12;
    for (let p = first; p < first + count; p++) {
      this.pageKind[p] = p < ramPages ? PageKind.Ram : PageKind.None;
    }
    this.onMapChange();
  }

  /**
   * Places a ROM image. Inside RAM (e.g. the BIOS window below 1 MiB) the bytes are copied into RAM and
   * the pages become read-only; elsewhere (e.g. just below 4 GiB) it is served as a read-only MMIO range.
   */
  mapRom(base: number, data: Uint8Array, name = 'rom'): void {
    if ((base & 0xfff) !== 0) throw new RangeError(`ROM ${name} must be 4 KiB aligned`);
    const size = (data.length + 0xfff) & ~0xfff;
    const end = base + size;
    if (end <= this.ramSize) {
      this.mem8.set(data, base);
      this.pageKind.fill(PageKind.RomInRam, base >>> 12, end >>> 12);
      this.onMapChange();
      return;
    }
    const rom = new Uint8Array(size);
    rom.fill(0xff);
    rom.set(data);
    const baseU = base >>> 0;
    this.mapMmio(baseU, size, {
      name,
      read8: (addr) => rom[(addr >>> 0) - baseU],
      write8: () => {},
    });
  }

  /** Makes a RomInRam range writable RAM again (e.g. a chipset's shadow-RAM control). */
  setRamWritable(base: number, size: number, writable: boolean): void {
    const first = base >>> 12;
    const end = (base + size) >>> 12;
    for (let p = first; p < end; p++) {
      const k = this.pageKind[p];
      if (k === PageKind.Ram || k === PageKind.RomInRam) {
        this.pageKind[p] = writable ? PageKind.Ram : PageKind.RomInRam;
      }
    }
    this.onMapChange();
  }

  // ---- slow-path physical accesses (the CPU's TLB handles RAM directly) ----

  read8(addr: number): number {
    const p = addr >>> 12;
    const k = this.pageKind[p];
    if (k <= PageKind.RomInRam) return this.mem8[addr];
    if (k === PageKind.Mmio) return this.handlers[this.pageHandler[p]].read8(addr >>> 0) & 0xff;
    return 0xff;
  }

  read16(addr: number): number {
    const p = addr >>> 12;
    const k = this.pageKind[p];
    if ((addr & 0xfff) <= 0xffe) {
      if (k <= PageKind.RomInRam) return this.mem8[addr] | (this.mem8[addr + 1] << 8);
      if (k === PageKind.Mmio) {
        const h = this.handlers[this.pageHandler[p]];
        if (h.read16) return h.read16(addr >>> 0) & 0xffff;
      }
      if (k === PageKind.None) return 0xffff;
    }
    return this.read8(addr) | (this.read8((addr + 1) | 0) << 8);
  }

  read32(addr: number): number {
    const p = addr >>> 12;
    const k = this.pageKind[p];
    if ((addr & 0xfff) <= 0xffc) {
      if (k <= PageKind.RomInRam) {
        if ((addr & 3) === 0) return this.mem32[addr >>> 2];
        const m = this.mem8;
        return m[addr] | (m[addr + 1] << 8) | (m[addr + 2] << 16) | (m[addr + 3] << 24);
      }
      if (k === PageKind.Mmio) {
        const h = this.handlers[this.pageHandler[p]];
        if (h.read32) return h.read32(addr >>> 0) | 0;
      }
      if (k === PageKind.None) return -1;
    }
    return this.read16(addr) | (this.read16((addr + 2) | 0) << 16);
  }

  write8(addr: number, value: number): void {
    const p = addr >>> 12;
    const k = this.pageKind[p];
    if (k === PageKind.Ram) this.mem8[addr] = value;
    else if (k === PageKind.Mmio) this.handlers[this.pageHandler[p]].write8(addr >>> 0, value & 0xff);
  }

  write16(addr: number, value: number): void {
    const p = addr >>> 12;
    const k = this.pageKind[p];
    if ((addr & 0xfff) <= 0xffe) {
      if (k === PageKind.Ram) {
        this.mem8[addr] = value;
        this.mem8[addr + 1] = value >> 8;
        return;
      }
      if (k === PageKind.Mmio) {
        const h = this.handlers[this.pageHandler[p]];
        if (h.write16) {
          h.write16(addr >>> 0, value & 0xffff);
          return;
        }
      }
      if (k !== PageKind.Mmio) return;
    }
    this.write8(addr, value);
    this.write8((addr + 1) | 0, value >> 8);
  }

  write32(addr: number, value: number): void {
    const p = addr >>> 12;
    const k = this.pageKind[p];
    if ((addr & 0xfff) <= 0xffc) {
      if (k === PageKind.Ram) {
        if ((addr & 3) === 0) {
          this.mem32[addr >>> 2] = value;
        } else {
          const m = this.mem8;
          m[addr] = value;
          m[addr + 1] = value >> 8;
          m[addr + 2] = value >> 16;
          m[addr + 3] = value >> 24;
        }
        return;
      }
      if (k === PageKind.Mmio) {
        const h = this.handlers[this.pageHandler[p]];
        if (h.write32) {
          h.write32(addr >>> 0, value | 0);
          return;
        }
      }
      if (k !== PageKind.Mmio) return;
    }
    this.write16(addr, value);
    this.write16((addr + 2) | 0, value >>> 16);
  }

  /** Copies bytes into physical memory (loaders); only RAM pages are written. */
  load(addr: number, data: Uint8Array): void {
    if (addr < 0 || addr + data.length > this.ramSize) {
      throw new RangeError(`cannot load ${data.length} bytes at 0x${addr.toString(16)}: outside RAM (${this.ramSize >>> 20} MiB)`);
    }
    this.mem8.set(data, addr);
  }
}
