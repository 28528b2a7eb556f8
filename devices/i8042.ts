/**
 * The 8042 keyboard controller (data port 0x60, status/command port 0x64) with a PS/2 keyboard on its
 * first port and a PS/2 mouse on its auxiliary port.
 *
 * Controller: command byte (RAM byte 0, read 0x20 / write 0x60; 32 bytes of RAM through 0x20–0x3F and
 * 0x60–0x7F), self-test 0xAA → 0x55, interface tests 0xAB/0xA9 → 0x00, disable/enable of the two ports
 * (0xAD/0xAE/0xA7/0xA8), the output port (0xD0 read / 0xD1 write: bit 1 = A20 gate, bit 0 = 0 resets the
 * CPU), 0xD2/0xD3 (a byte that looks as if it came from the keyboard / mouse), 0xD4 (next data byte goes to
 * the mouse), 0xDD/0xDF (A20 off/on), 0xC0 input port, 0xE0 test inputs, 0xF0–0xFF pulse output lines
 * (bit 0 clear, e.g. 0xFE, resets). A data byte written to 0x60 with no command pending goes to the
 * keyboard and re-enables the keyboard port, as on the real part.
 *
 * Everything is instantaneous: replies are queued at once and IBF never reads as set. The output buffer
 * holds one byte; when the guest reads it the next byte is loaded straight away, first controller replies,
 * then keyboard and mouse bytes alternately (each only while its port is enabled in the command byte).
 * IRQ 1 (keyboard bytes, command byte bit 0) and IRQ 12 (mouse bytes, bit 1) are asserted while such a
 * byte is in the output buffer, so each byte gives the (edge-triggered) PIC a fresh edge.
 *
 * With command byte bit 6 set the controller translates the keyboard's set-2 codes into set 1 (it eats
 * each 0xF0 break prefix and sets bit 7 of the next translated code), as on PC/AT compatibles.
 *
 * Host key names are DOM KeyboardEvent.code strings ("KeyA", "Digit1", "Enter", "ShiftLeft", "ArrowUp",
 * "NumpadEnter", "F1", "PrintScreen", "Pause", "IntlBackslash", …; see KEYS below). The keyboard speaks
 * scancode set 2 (default) or set 1; set 3 is refused with 0xFE. It does not auto-repeat: hosts send
 * repeated keyDown calls (as DOM keydown events do). Mouse motion: `mouseMove(dx, dy, buttons, dz)` with
 * dx right, dy DOWN (screen / DOM convention; the device flips it for PS/2), buttons as in DOM
 * MouseEvent.buttons (1 left, 2 right, 4 middle, 8 back, 16 forward), dz wheel steps (positive = towards
 * the user, like DOM deltaY). Large motions are split into several packets rather than overflowing.
 */
import type { IoBus } from '../core/iobus';
import type { IrqLine } from '../core/host';
import type { Device } from '../core/machine';
import type { A20Gate } from './port92';

// status register
export const STAT_OBF = 0x01, STAT_IBF = 0x02, STAT_SYS = 0x04, STAT_A2 = 0x08;
export const STAT_INH = 0x10, STAT_AUXB = 0x20, STAT_TIMEOUT = 0x40, STAT_PARITY = 0x80;
// command byte
export const CMD_KBD_INT = 0x01, CMD_AUX_INT = 0x02, CMD_SYS = 0x04, CMD_KBD_DIS = 0x10;
export const CMD_AUX_DIS = 0x20, CMD_XLATE = 0x40;

const ACK = 0xfa, NAK = 0xfe, BAT_OK = 0xaa, ECHO = 0xee;
/** bytes a device keeps for the controller before it reports an overrun (keyboard) or drops (mouse) */
const KBD_QUEUE_MAX = 1024;
const MOUSE_QUEUE_MAX = 1024;

// -------------------------------------------------------------------------------------------------
// scancodes
// -------------------------------------------------------------------------------------------------

/**
 * DOM code → [set-1 make code, set-2 make code]; 0xE0xx marks an E0-prefixed (extended) key.
 * PrintScreen and Pause have multi-byte sequences of their own (below).
 */
export const KEYS: Readonly<Record<string, readonly [number, number]>> = {
  Escape: [0x01, 0x76], Digit1: [0x02, 0x16], Digit2: [0x03, 0x1e], Digit3: [0x04, 0x26],
  Digit4: [0x05, 0x25], Digit5: [0x06, 0x2e], Digit6: [0x07, 0x36], Digit7: [0x08, 0x3d],
  Digit8: [0x09, 0x3e], Digit9: [0x0a, 0x46], Digit0: [0x0b, 0x45], Minus: [0x0c, 0x4e],
  Equal: [0x0d, 0x55], Backspace: [0x0e, 0x66], Tab: [0x0f, 0x0d], KeyQ: [0x10, 0x15],
  KeyW: [0x11, 0x1d], KeyE: [0x12, 0x24], KeyR: [0x13, 0x2d], KeyT: [0x14, 0x2c],
  KeyY: [0x15, 0x35], KeyU: [0x16, 0x3c], KeyI: [0x17, 0x43], KeyO: [0x18, 0x44],
  KeyP: [0x19, 0x4d], BracketLeft: [0x1a, 0x54], BracketRight: [0x1b, 0x5b], Enter: [0x1c, 0x5a],
  ControlLeft: [0x1d, 0x14], KeyA: [0x1e, 0x1c], KeyS: [0x1f, 0x1b], KeyD: [0x20, 0x23],
  KeyF: [0x21, 0x2b], KeyG: [0x22, 0x34], KeyH: [0x23, 0x33], KeyJ: [0x24, 0x3b],
  KeyK: [0x25, 0x42], KeyL: [0x26, 0x4b], Semicolon: [0x27, 0x4c], Quote: [0x28, 0x52],
  Backquote: [0x29, 0x0e], ShiftLeft: [0x2a, 0x12], Backslash: [0x2b, 0x5d], KeyZ: [0x2c, 0x1a],
  KeyX: [0x2d, 0x22], KeyC: [0x2e, 0x21], KeyV: [0x2f, 0x2a], KeyB: [0x30, 0x32],
  KeyN: [0x31, 0x31], KeyM: [0x32, 0x3a], Comma: [0x33, 0x41], Period: [0x34, 0x49],
  Slash: [0x35, 0x4a], ShiftRight: [0x36, 0x59], NumpadMultiply: [0x37, 0x7c], AltLeft: [0x38, 0x11],
  Space: [0x39, 0x29], CapsLock: [0x3a, 0x58], F1: [0x3b, 0x05], F2: [0x3c, 0x06],
  F3: [0x3d, 0x04], F4: [0x3e, 0x0c], F5: [0x3f, 0x03], F6: [0x40, 0x0b],
  F7: [0x41, 0x83], F8: [0x42, 0x0a], F9: [0x43, 0x01], F10: [0x44, 0x09],
  NumLock: [0x45, 0x77], ScrollLock: [0x46, 0x7e], Numpad7: [0x47, 0x6c], Numpad8: [0x48, 0x75],
  Numpad9: [0x49, 0x7d], NumpadSubtract: [0x4a, 0x7b], Numpad4: [0x4b, 0x6b], Numpad5: [0x4c, 0x73],
  Numpad6: [0x4d, 0x74], NumpadAdd: [0x4e, 0x79], Numpad1: [0x4f, 0x69], Numpad2: [0x50, 0x72],
  Numpad3: [0x51, 0x7a], Numpad0: [0x52, 0x70], NumpadDecimal: [0x53, 0x71],
  IntlBackslash: [0x56, 0x61], F11: [0x57, 0x78], F12: [0x58, 0x07], NumpadEqual: [0x59, 0x0f],
  F13: [0x64, 0x08], F14: [0x65, 0x10], F15: [0x66, 0x18], F16: [0x67, 0x20],
  F17: [0x68, 0x28], F18: [0x69, 0x30], F19: [0x6a, 0x38], F20: [0x6b, 0x40],
  F21: [0x6c, 0x48], F22: [0x6d, 0x50], F23: [0x6e, 0x57], F24: [0x76, 0x5f],
  KanaMode: [0x70, 0x13], IntlRo: [0x73, 0x51], Convert: [0x79, 0x64], NonConvert: [0x7b, 0x67],
  IntlYen: [0x7d, 0x6a], NumpadComma: [0x7e, 0x6d],
  // extended keys
  MediaTrackPrevious: [0xe010, 0xe015], MediaTrackNext: [0xe019, 0xe04d],
  NumpadEnter: [0xe01c, 0xe05a], ControlRight: [0xe01d, 0xe014], AudioVolumeMute: [0xe020, 0xe023],
  MediaPlayPause: [0xe022, 0xe034], MediaStop: [0xe024, 0xe03b], AudioVolumeDown: [0xe02e, 0xe021],
  AudioVolumeUp: [0xe030, 0xe032], NumpadDivide: [0xe035, 0xe04a], AltRight: [0xe038, 0xe011],
  Home: [0xe047, 0xe06c], ArrowUp: [0xe048, 0xe075], PageUp: [0xe049, 0xe07d],
  ArrowLeft: [0xe04b, 0xe06b], ArrowRight: [0xe04d, 0xe074], End: [0xe04f, 0xe069],
  ArrowDown: [0xe050, 0xe072], PageDown: [0xe051, 0xe07a], Insert: [0xe052, 0xe070],
  Delete: [0xe053, 0xe071], MetaLeft: [0xe05b, 0xe01f], MetaRight: [0xe05c, 0xe027],
  ContextMenu: [0xe05d, 0xe02f], Power: [0xe05e, 0xe037], Sleep: [0xe05f, 0xe03f],
  WakeUp: [0xe063, 0xe05e],
};

/** the 8042's set-2 → set-1 translation table, derived from the key table (codes no key uses, other
 *  than 0x00 and 0x02, pass through unchanged) */
export const TRANSLATE: Uint8Array = (() => {
  const t = new Uint8Array(256);
  for (let i = 0; i < 256; i++) t[i] = i;
  t[0x00] = 0xff; // set-2 overrun → set-1 overrun
  for (const [s1, s2] of Object.values(KEYS)) t[s2 & 0xff] = s1 & 0xff;
  t[0x84] = 0x54; // Alt+PrintScreen (SysRq)
  // no key has set-2 code 0x02, but the part maps it to 0x41, so that a set-2 keyboard's "current set"
  // reply (0x02) reads 0x41 through translation (1 → 0x43 and 3 → 0x3F come from F9 and F5)
  t[0x02] = 0x41;
  return t;
})();

function makeCodes(code: string, set: number): number[] | null {
  if (code === 'PrintScreen') return set === 1 ? [0xe0, 0x2a, 0xe0, 0x37] : [0xe0, 0x12, 0xe0, 0x7c];
  if (code === 'Pause') {
    return set === 1 ? [0xe1, 0x1d, 0x45, 0xe1, 0x9d, 0xc5] : [0xe1, 0x14, 0x77, 0xe1, 0xf0, 0x14, 0xf0, 0x77];
  }
  const k = KEYS[code];
  if (!k) return null;
  const c = set === 1 ? k[0] : k[1];
  return c > 0xff ? [0xe0, c & 0xff] : [c];
}

function breakCodes(code: string, set: number): number[] | null {
  if (code === 'PrintScreen') {
    return set === 1 ? [0xe0, 0xb7, 0xe0, 0xaa] : [0xe0, 0xf0, 0x7c, 0xe0, 0xf0, 0x12];
  }
  if (code === 'Pause') return [];
  const k = KEYS[code];
  if (!k) return null;
  if (set === 1) return k[0] > 0xff ? [0xe0, (k[0] & 0xff) | 0x80] : [k[0] | 0x80];
  return k[1] > 0xff ? [0xe0, 0xf0, k[1] & 0xff] : [0xf0, k[1]];
}

// -------------------------------------------------------------------------------------------------
// the PS/2 keyboard
// -------------------------------------------------------------------------------------------------

export interface KeyboardState {
  resp: number[];
  keys: number[];
  scanning: boolean;
  set: number;
  leds: number;
  typematic: number;
  expect: number;
  last: number;
}

class Ps2Keyboard {
  /** replies to commands (sent before pending key codes) */
  resp: number[] = [];
  /** key codes */
  keys: number[] = [];
  scanning = true;
  set = 2;
  leds = 0;
  typematic = 0x2b;
  /** command waiting for its parameter byte (0 = none) */
  expect = 0;
  /** the last byte sent to the controller (for 0xFE resend) */
  last = 0;

  hasData(): boolean {
    return this.resp.length > 0 || this.keys.length > 0;
  }

  shift(): number {
    const b = this.resp.length ? this.resp.shift()! : this.keys.shift()!;
    this.last = b;
    return b;
  }

  private defaults(): void {
    this.set = 2;
    this.typematic = 0x2b;
    this.leds = 0;
  }

  reset(): void {
    this.resp = [];
    this.keys = [];
    this.scanning = true;
    this.expect = 0;
    this.defaults();
  }

  /** a byte from the controller */
  write(b: number): void {
    if (this.expect) {
      const cmd = this.expect;
      this.expect = 0;
      // a command byte instead of the awaited parameter is taken as a new command
      if (b < 0xed) {
        this.parameter(cmd, b);
        return;
      }
    }
    switch (b) {
      case 0xed: // set LEDs
      case 0xf3: // set typematic rate/delay
      case 0xf0: // get/set scancode set
        this.expect = b;
        this.resp.push(ACK);
        break;
      case 0xee:
        this.resp.push(ECHO);
        break;
      case 0xf2: // identify: MF2 keyboard
        this.resp.push(ACK, 0xab, 0x83);
        break;
      case 0xf4:
        this.scanning = true;
        this.resp.push(ACK);
        break;
      case 0xf5:
        this.defaults();
        this.scanning = false;
        this.keys = [];
        this.resp.push(ACK);
        break;
      case 0xf6:
        this.defaults();
        this.keys = [];
        this.resp.push(ACK);
        break;
      case 0xf7: case 0xf8: case 0xf9: case 0xfa: case 0xfb: case 0xfc: case 0xfd:
        this.resp.push(ACK); // set-3 key modes: accepted, no effect in sets 1/2
        break;
      case 0xfe:
        this.resp.push(this.last);
        break;
      case 0xff:
        this.reset();
        this.resp.push(ACK, BAT_OK);
        break;
      default:
        this.resp.push(NAK);
    }
  }

  private parameter(cmd: number, b: number): void {
    switch (cmd) {
      case 0xed:
        this.leds = b & 0x07;
        this.resp.push(ACK);
        break;
      case 0xf3:
        this.typematic = b & 0x7f;
        this.resp.push(ACK);
        break;
      case 0xf0:
        if (b === 0) this.resp.push(ACK, this.set);
        else if (b === 1 || b === 2) {
          this.set = b;
          this.keys = [];
          this.resp.push(ACK);
        } else this.resp.push(NAK);
        break;
    }
  }

  private push(bytes: number[]): void {
    if (this.keys.length + bytes.length > KBD_QUEUE_MAX) {
      if (this.keys[this.keys.length - 1] !== (this.set === 1 ? 0xff : 0x00)) {
        this.keys.push(this.set === 1 ? 0xff : 0x00); // overrun
      }
      return;
    }
    for (const b of bytes) this.keys.push(b);
  }

  key(code: string, down: boolean): boolean {
    const bytes = down ? makeCodes(code, this.set) : breakCodes(code, this.set);
    if (!bytes) return false;
    if (this.scanning && bytes.length) this.push(bytes);
    return true;
  }

  save(): KeyboardState {
    const { resp, keys, scanning, set, leds, typematic, expect, last } = this;
    return { resp: resp.slice(), keys: keys.slice(), scanning, set, leds, typematic, expect, last };
  }

  load(s: KeyboardState): void {
    this.resp = s.resp.map((b) => b & 0xff);
    this.keys = s.keys.map((b) => b & 0xff);
    this.scanning = !!s.scanning;
    this.set = s.set === 1 ? 1 : 2;
    this.leds = s.leds & 7;
    this.typematic = s.typematic & 0x7f;
    this.expect = s.expect & 0xff;
    this.last = s.last & 0xff;
  }
}

// -------------------------------------------------------------------------------------------------
// the PS/2 mouse
// -------------------------------------------------------------------------------------------------

export interface MouseState {
  resp: number[];
  packets: number[];
  reporting: boolean;
  remote: boolean;
  wrap: boolean;
  scaling21: boolean;
  resolution: number;
  rate: number;
  id: number;
  expect: number;
  last: number;
  buttons: number;
  dx: number;
  dy: number;
  dz: number;
  rates: number[];
}

class Ps2Mouse {
  resp: number[] = [];
  packets: number[] = [];
  reporting = false;
  remote = false;
  wrap = false;
  scaling21 = false;
  resolution = 2;
  rate = 100;
  /** 0 = standard, 3 = IntelliMouse (wheel), 4 = IntelliMouse Explorer (wheel + buttons 4/5) */
  id = 0;
  expect = 0;
  last = 0;
  buttons = 0;
  /** motion not yet reported (remote mode, or reporting disabled) */
  dx = 0;
  dy = 0;
  dz = 0;
  /** the last three sample rates set (IntelliMouse knock sequences) */
  rates: number[] = [];

  hasData(): boolean {
    return this.resp.length > 0 || this.packets.length > 0;
  }

  shift(): number {
    const b = this.resp.length ? this.resp.shift()! : this.packets.shift()!;
    this.last = b;
    return b;
  }

  private defaults(): void {
    this.rate = 100;
    this.resolution = 2;
    this.scaling21 = false;
    this.reporting = false;
  }

  reset(): void {
    this.defaults();
    this.resp = [];
    this.packets = [];
    this.remote = false;
    this.wrap = false;
    this.id = 0;
    this.expect = 0;
    this.dx = this.dy = this.dz = 0;
    this.rates = [];
  }

  write(b: number): void {
    if (this.expect) {
      const cmd = this.expect;
      this.expect = 0;
      if (cmd === 0xf3) this.setRate(b);
      else this.resolution = b & 3;
      this.resp.push(ACK);
      return;
    }
    if (this.wrap && b !== 0xff && b !== 0xec) {
      this.resp.push(b);
      return;
    }
    switch (b) {
      case 0xe6:
        this.scaling21 = false;
        this.resp.push(ACK);
        break;
      case 0xe7:
        this.scaling21 = true;
        this.resp.push(ACK);
        break;
      case 0xe8: // set resolution
      case 0xf3: // set sample rate
        this.expect = b;
        this.resp.push(ACK);
        break;
      case 0xe9: { // status request
        const btn = ((this.buttons & 1) << 2) | ((this.buttons & 4) >> 1) | ((this.buttons & 2) >> 1);
        const status = (this.remote ? 0x40 : 0) | (this.reporting ? 0x20 : 0) | (this.scaling21 ? 0x10 : 0) | btn;
        this.resp.push(ACK, status, this.resolution, this.rate);
        break;
      }
      case 0xea:
        this.remote = false;
        this.dx = this.dy = this.dz = 0;
        this.resp.push(ACK);
        break;
      case 0xeb: // read data
        this.resp.push(ACK);
        this.emit(this.resp, true);
        break;
      case 0xec:
        this.wrap = false;
        this.resp.push(ACK);
        break;
      case 0xee:
        this.wrap = true;
        this.resp.push(ACK);
        break;
      case 0xf0:
        this.remote = true;
        this.dx = this.dy = this.dz = 0;
        this.resp.push(ACK);
        break;
      case 0xf2:
        this.resp.push(ACK, this.id);
        break;
      case 0xf4:
        this.reporting = true;
        this.dx = this.dy = this.dz = 0;
        this.resp.push(ACK);
        break;
      case 0xf5:
        this.reporting = false;
        this.resp.push(ACK);
        break;
      case 0xf6:
        this.defaults();
        this.resp.push(ACK);
        break;
      case 0xfe:
        this.resp.push(this.last);
        break;
      case 0xff:
        this.reset();
        this.resp.push(ACK, BAT_OK, 0x00);
        break;
      default:
        this.resp.push(NAK);
    }
  }

  private setRate(r: number): void {
    this.rate = r;
    this.rates.push(r);
    if (this.rates.length > 3) this.rates.shift();
    const seq = this.rates.join(',');
    if (seq === '200,100,80' && this.id === 0) this.id = 3;
    else if (seq === '200,200,80' && this.id === 3) this.id = 4;
  }

  private scale(v: number): number {
    if (!this.scaling21) return v;
    const a = Math.abs(v);
    const s = a >= 6 ? 2 * a : [0, 1, 1, 3, 6, 9][a];
    return v < 0 ? -s : s;
  }

  /** appends one packet from the accumulated motion (at most one packet's worth) to `out` */
  private emit(out: number[], remote: boolean): void {
    const x = Math.max(-256, Math.min(255, this.dx));
    const y = Math.max(-256, Math.min(255, this.dy));
    const z = Math.max(-8, Math.min(7, this.dz));
    this.dx -= x;
    this.dy -= y;
    this.dz -= z;
    const sx = remote ? x : this.scale(x), sy = remote ? y : this.scale(y);
    const ox = sx < -256 || sx > 255, oy = sy < -256 || sy > 255;
    const b0 = (this.buttons & 7) | 0x08 | (sx < 0 ? 0x10 : 0) | (sy < 0 ? 0x20 : 0) | (ox ? 0x40 : 0) | (oy ? 0x80 : 0);
    out.push(b0, sx & 0xff, sy & 0xff);
    if (this.id === 3) out.push(z & 0xff);
    else if (this.id === 4) out.push((z & 0x0f) | ((this.buttons & 0x18) << 1));
  }

  move(dx: number, dy: number, buttons: number, dz: number): void {
    const changed = (buttons & 0x1f) !== this.buttons;
    this.buttons = buttons & 0x1f;
    this.dx += Math.trunc(dx);
    this.dy -= Math.trunc(dy); // PS/2 y grows upwards
    if (this.id !== 0) this.dz += Math.trunc(dz);
    if (!this.reporting || this.remote) return;
    if (!changed && this.dx === 0 && this.dy === 0 && this.dz === 0) return;
    const size = this.id === 0 ? 3 : 4;
    do {
      if (this.packets.length + size > MOUSE_QUEUE_MAX) {
        this.dx = this.dy = this.dz = 0; // the guest is not reading: drop the motion
        return;
      }
      this.emit(this.packets, false);
    } while (this.dx !== 0 || this.dy !== 0 || this.dz !== 0);
  }

  save(): MouseState {
    const { reporting, remote, wrap, scaling21, resolution, rate, id, expect, last, buttons, dx, dy, dz } = this;
    return {
      resp: this.resp.slice(), packets: this.packets.slice(), rates: this.rates.slice(),
      reporting, remote, wrap, scaling21, resolution, rate, id, expect, last, buttons, dx, dy, dz,
    };
  }

  load(s: MouseState): void {
    this.resp = s.resp.map((b) => b & 0xff);
    this.packets = s.packets.map((b) => b & 0xff);
    this.rates = s.rates.slice(-3);
    this.reporting = !!s.reporting;
    this.remote = !!s.remote;
    this.wrap = !!s.wrap;
    this.scaling21 = !!s.scaling21;
    this.resolution = s.resolution & 3;
    this.rate = s.rate & 0xff;
    this.id = s.id;
    this.expect = s.expect & 0xff;
    this.last = s.last & 0xff;
    this.buttons = s.buttons & 0x1f;
    this.dx = s.dx;
    this.dy = s.dy;
    this.dz = s.dz;
  }
}

// -------------------------------------------------------------------------------------------------
// the controller
// -------------------------------------------------------------------------------------------------

export interface I8042Host {
  readonly io: IoBus;
  /** the A20 gate (the machine's Memory) */
  readonly mem: A20Gate;
}

export interface I8042Options {
  /** IRQ 1 */
  irqKbd?: IrqLine | null;
  /** IRQ 12 */
  irqMouse?: IrqLine | null;
  /** the CPU reset line was pulsed (platform: machine.guestReset) */
  onReset?: () => void;
}

export interface I8042State {
  ram: number[];
  /** controller replies; bit 8 marks a byte that appears to come from the aux port */
  ctrl: number[];
  obf: boolean;
  outByte: number;
  outAux: boolean;
  lastAux: boolean;
  a2: boolean;
  pending: number;
  xlateBreak: boolean;
  kbd: KeyboardState;
  mouse: MouseState;
}

/** command byte at power-on: keyboard and mouse interrupts on, system flag, translation (post-BIOS PC) */
const CMD_DEFAULT = CMD_KBD_INT | CMD_AUX_INT | CMD_SYS | CMD_XLATE;

export class I8042 implements Device {
  readonly name = 'i8042';
  private readonly mem: A20Gate;
  private irqKbd: IrqLine | null;
  private irqMouse: IrqLine | null;
  private readonly onReset: () => void;
  private readonly kbd = new Ps2Keyboard();
  private readonly mouse = new Ps2Mouse();

  /** controller RAM; byte 0 is the command byte */
  private ram = new Uint8Array(32);
  private ctrl: number[] = [];
  private obf = false;
  private outByte = 0;
  private outAux = false;
  private lastAux = false;
  /** the last write went to the command port */
  private a2 = false;
  /** controller command waiting for a data byte (0 = none) */
  private pending = 0;
  /** translation: a set-2 0xF0 prefix was swallowed */
  private xlateBreak = false;
  private kbdLevel = false;
  private mouseLevel = false;

  constructor(host: I8042Host, options: I8042Options = {}) {
    this.mem = host.mem;
    this.irqKbd = options.irqKbd ?? null;
    this.irqMouse = options.irqMouse ?? null;
    this.onReset = options.onReset ?? (() => {});
    this.ram[0] = CMD_DEFAULT;
    host.io.register('i8042-data', 0x60, 1, {
      read8: () => this.readData(),
      write8: (_p, v) => this.writeData(v),
    });
    host.io.register('i8042-cmd', 0x64, 1, {
      read8: () => this.status(),
      write8: (_p, v) => this.writeCommand(v),
    });
  }

  connectIrqs(kbd: IrqLine | null, mouse: IrqLine | null): void {
    this.irqKbd = kbd;
    this.irqMouse = mouse;
    if (kbd) kbd(this.kbdLevel);
    if (mouse) mouse(this.mouseLevel);
  }

  // ---------------------------------------------------------------------------------------------
  // host input
  // ---------------------------------------------------------------------------------------------

  /** a key went down (DOM KeyboardEvent.code); false if the name is unknown */
  keyDown(code: string): boolean {
    const ok = this.kbd.key(code, true);
    this.fill();
    return ok;
  }

  /** a key went up (DOM KeyboardEvent.code); false if the name is unknown */
  keyUp(code: string): boolean {
    const ok = this.kbd.key(code, false);
    this.fill();
    return ok;
  }

  /** mouse motion: dx right, dy down (screen convention), buttons 1 left | 2 right | 4 middle | 8 | 16,
   *  dz wheel steps (positive = towards the user) */
  mouseMove(dx: number, dy: number, buttons: number, dz = 0): void {
    this.mouse.move(dx, dy, buttons, dz);
    this.fill();
  }

  /** keyboard LEDs as last set by the guest: bit 0 Scroll Lock, bit 1 Num Lock, bit 2 Caps Lock */
  get leds(): number {
    return this.kbd.leds;
  }

  get commandByte(): number {
    return this.ram[0];
  }

  get irqKbdAsserted(): boolean {
    return this.kbdLevel;
  }

  get irqMouseAsserted(): boolean {
    return this.mouseLevel;
  }

  // ---------------------------------------------------------------------------------------------
  // the output buffer
  // ---------------------------------------------------------------------------------------------

  private updateIrq(): void {
    const cmd = this.ram[0];
    const k = this.obf && !this.outAux && (cmd & CMD_KBD_INT) !== 0;
    const m = this.obf && this.outAux && (cmd & CMD_AUX_INT) !== 0;
    if (k !== this.kbdLevel) {
      this.kbdLevel = k;
      if (this.irqKbd) this.irqKbd(k);
    }
    if (m !== this.mouseLevel) {
      this.mouseLevel = m;
      if (this.irqMouse) this.irqMouse(m);
    }
  }

  private load(byte: number, aux: boolean): void {
    this.obf = true;
    this.outByte = byte & 0xff;
    this.outAux = aux;
    this.updateIrq();
  }

  /** moves the next byte into an empty output buffer */
  private fill(): void {
    if (this.obf) return;
    if (this.ctrl.length) {
      const v = this.ctrl.shift()!;
      this.load(v & 0xff, (v & 0x100) !== 0);
      return;
    }
    const cmd = this.ram[0];
    const kbdReady = (cmd & CMD_KBD_DIS) === 0 && this.kbd.hasData();
    const auxReady = (cmd & CMD_AUX_DIS) === 0 && this.mouse.hasData();
    if (auxReady && (!kbdReady || !this.lastAux)) {
      this.lastAux = true;
      this.load(this.mouse.shift(), true);
      return;
    }
    if (!kbdReady) return;
    this.lastAux = false;
    let b = this.kbd.shift();
    if (cmd & CMD_XLATE) {
      while (b === 0xf0) {
        this.xlateBreak = true;
        if (!this.kbd.hasData()) return;
        b = this.kbd.shift();
      }
      b = TRANSLATE[b] | (this.xlateBreak ? 0x80 : 0);
      this.xlateBreak = false;
    }
    this.load(b, false);
  }

  private reply(byte: number, aux = false): void {
    this.ctrl.push((byte & 0xff) | (aux ? 0x100 : 0));
    this.fill();
  }

  private status(): number {
    let s = STAT_INH;
    if (this.obf) s |= STAT_OBF;
    if (this.obf && this.outAux) s |= STAT_AUXB;
    if (this.ram[0] & CMD_SYS) s |= STAT_SYS;
    if (this.a2) s |= STAT_A2;
    return s;
  }

  private readData(): number {
    const v = this.outByte;
    if (this.obf) {
      this.obf = false;
      this.updateIrq();
      this.fill();
    }
    return v;
  }

  private outputPort(): number {
    let v = 0xcc | 0x01; // bits 2/3/6/7 high, reset line not asserted
    if (this.mem.a20Enabled) v |= 0x02;
    if (this.obf && !this.outAux) v |= 0x10;
    if (this.obf && this.outAux) v |= 0x20;
    return v;
  }

  private writeOutputPort(v: number): void {
    this.mem.setA20((v & 0x02) !== 0);
    if ((v & 0x01) === 0) this.onReset();
  }

  private setCommandByte(v: number): void {
    this.ram[0] = v & 0x7f;
    this.updateIrq();
    this.fill();
  }

  private writeData(v: number): void {
    this.a2 = false;
    const cmd = this.pending;
    this.pending = 0;
    if (cmd >= 0x60 && cmd <= 0x7f) {
      if (cmd === 0x60) this.setCommandByte(v);
      else this.ram[cmd & 0x1f] = v;
      return;
    }
    switch (cmd) {
      case 0xd1:
        this.writeOutputPort(v);
        return;
      case 0xd2:
        this.reply(v, false);
        return;
      case 0xd3:
        this.reply(v, true);
        return;
      case 0xd4:
        this.mouse.write(v);
        this.fill();
        return;
    }
    // a byte for the keyboard; sending it re-enables the keyboard port
    this.kbd.write(v);
    if (this.ram[0] & CMD_KBD_DIS) this.ram[0] &= ~CMD_KBD_DIS;
    this.fill();
  }

  private writeCommand(c: number): void {
    this.a2 = true;
    this.pending = 0;
    if (c >= 0x20 && c <= 0x3f) {
      this.reply(this.ram[c & 0x1f]);
      return;
    }
    if ((c >= 0x60 && c <= 0x7f) || c === 0xd1 || c === 0xd2 || c === 0xd3 || c === 0xd4) {
      this.pending = c;
      return;
    }
    if (c >= 0xf0) {
      if ((c & 0x01) === 0) this.onReset(); // pulse the reset line
      return;
    }
    switch (c) {
      case 0xa4: // password installed? no
        this.reply(0xf1);
        break;
      case 0xa7:
        this.setCommandByte(this.ram[0] | CMD_AUX_DIS);
        break;
      case 0xa8:
        this.setCommandByte(this.ram[0] & ~CMD_AUX_DIS);
        break;
      case 0xa9: // aux interface test: OK
      case 0xab: // keyboard interface test: OK
        this.reply(0x00);
        break;
      case 0xaa: // self-test: passed; sets the system flag
        this.ram[0] |= CMD_SYS;
        this.reply(0x55);
        break;
      case 0xad:
        this.setCommandByte(this.ram[0] | CMD_KBD_DIS);
        break;
      case 0xae:
        this.setCommandByte(this.ram[0] & ~CMD_KBD_DIS);
        break;
      case 0xc0: // input port: keyboard not inhibited
        this.reply(0x80);
        break;
      case 0xd0:
        this.reply(this.outputPort());
        break;
      case 0xdd:
        this.mem.setA20(false);
        break;
      case 0xdf:
        this.mem.setA20(true);
        break;
      case 0xe0: // test inputs: clock and data lines low
        this.reply(0x00);
        break;
      default:
        break; // unknown commands are ignored
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Device
  // ---------------------------------------------------------------------------------------------

  reset(): void {
    this.ram.fill(0);
    this.ram[0] = CMD_DEFAULT;
    this.ctrl = [];
    this.obf = false;
    this.outByte = 0;
    this.outAux = false;
    this.lastAux = false;
    this.a2 = false;
    this.pending = 0;
    this.xlateBreak = false;
    this.kbd.reset();
    this.mouse.reset();
    this.updateIrq();
  }

  saveState(): I8042State {
    return {
      ram: Array.from(this.ram),
      ctrl: this.ctrl.slice(),
      obf: this.obf,
      outByte: this.outByte,
      outAux: this.outAux,
      lastAux: this.lastAux,
      a2: this.a2,
      pending: this.pending,
      xlateBreak: this.xlateBreak,
      kbd: this.kbd.save(),
      mouse: this.mouse.save(),
    };
  }

  loadState(state: unknown): void {
    const s = state as I8042State;
    for (let i = 0; i < 32; i++) this.ram[i] = (s.ram[i] ?? 0) & 0xff;
    this.ctrl = s.ctrl.map((v) => v & 0x1ff);
    this.obf = !!s.obf;
    this.outByte = s.outByte & 0xff;
    this.outAux = !!s.outAux;
    this.lastAux = !!s.lastAux;
    this.a2 = !!s.a2;
    this.pending = s.pending & 0xff;
    this.xlateBreak = !!s.xlateBreak;
    this.kbd.load(s.kbd);
    this.mouse.load(s.mouse);
    const k = this.obf && !this.outAux && (this.ram[0] & CMD_KBD_INT) !== 0;
    const m = this.obf && this.outAux && (this.ram[0] & CMD_AUX_INT) !== 0;
    this.kbdLevel = k;
    this.mouseLevel = m;
    if (this.irqKbd) this.irqKbd(k);
    if (this.irqMouse) this.irqMouse(m);
  }
}
