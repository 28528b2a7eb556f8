/**
 * The I/O port space (64 Ki ports). Devices register named port ranges; an overlapping registration is
 * an error naming both devices. Unclaimed ports read as all ones and ignore writes. Word and dword
 * accesses go to a device's 16/32-bit handler when it has one, else they are split into bytes.
 */

export interface PortHandler {
  read8?(port: number): number;
  write8?(port: number, value: number): void;
  read16?(port: number): number;
  write16?(port: number, value: number): void;
  read32?(port: number): number;
  write32?(port: number, value: number): void;
}

interface Entry {
  name: string;
  h: PortHandler;
}

export class IoBus {
  private readonly owner = new Uint16Array(65536); // 0 = none, else index+1 into entries
  private readonly entries: Entry[] = [];

  register(name: string, first: number, count: number, handler: PortHandler): void {
    for (let p = first; p < first + count; p++) {
      const o = this.owner[p & 0xffff];
      if (o !== 0) {
        throw new Error(`I/O port 0x${p.toString(16)} of ${name} overlaps ${this.entries[o - 1].name}`);
      }
    }
    this.entries.push({ name, h: handler });
    const idx = this.entries.length;
    for (let p = first; p < first + count; p++) this.owner[p & 0xffff] = idx;
  }

  unregister(first: number, count: number): void {
    for (let p = first; p < first + count; p++) this.owner[p & 0xffff] = 0;
  }

  /** the name of the device owning a port, or undefined */
  ownerOf(port: number): string | undefined {
    const o = this.owner[port & 0xffff];
    return o ? this.entries[o - 1].name : undefined;
  }

  in8(port: number): number {
    const o = this.owner[port];
    if (o === 0) return 0xff;
    const h = this.entries[o - 1].h;
    return h.read8 ? h.read8(port) & 0xff : 0xff;
  }

  in16(port: number): number {
    const o = this.owner[port];
    if (o !== 0) {
      const h = this.entries[o - 1].h;
      if (h.read16) return h.read16(port) & 0xffff;
    }
    return this.in8(port) | (this.in8((port + 1) & 0xffff) << 8);
  }

  in32(port: number): number {
    const o = this.owner[port];
    if (o !== 0) {
      const h = this.entries[o - 1].h;
      if (h.read32) return h.read32(port) | 0;
    }
    return this.in16(port) | (this.in16((port + 2) & 0xffff) << 16);
  }

  out8(port: number, value: number): void {
    const o = this.owner[port];
    if (o === 0) return;
    const h = this.entries[o - 1].h;
    if (h.write8) h.write8(port, value & 0xff);
  }

  out16(port: number, value: number): void {
    const o = this.owner[port];
    if (o !== 0) {
      const h = this.entries[o - 1].h;
      if (h.write16) {
        h.write16(port, value & 0xffff);
        return;
      }
    }
    this.out8(port, value & 0xff);
    this.out8((port + 1) & 0xffff, (value >> 8) & 0xff);
  }

  out32(port: number, value: number): void {
    const o = this.owner[port];
    if (o !== 0) {
      const h = this.entries[o - 1].h;
      if (h.write32) {
        h.write32(port, value | 0);
        return;
      }
    }
    this.out16(port, value & 0xffff);
    this.out16((port + 2) & 0xffff, (value >>> 16) & 0xffff);
  }
}
