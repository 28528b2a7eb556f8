/**
 * The interactive serial console's escape keys, in the manner of QEMU's `-serial mon:stdio`: Ctrl-A is
 * the escape character; Ctrl-A X quits, Ctrl-A H shows the keys, Ctrl-A S saves a snapshot and goes on,
 * Ctrl-A P pauses or resumes, Ctrl-A G writes a screenshot of the VGA screen, Ctrl-A A (or Ctrl-A Ctrl-A) sends a Ctrl-A to the guest. Other keys after
 * Ctrl-A are dropped. Pure logic (no Node APIs), so it is testable.
 */

export const CTRL_A = 0x01;

export const ESCAPE_HELP =
  '\r\nC-a h    print this help\r\nC-a x    exit x86vm\r\nC-a s    save a snapshot (x86vm-DATE-TIME.snap) and go on\r\n' +
  'C-a p    pause / resume the guest\r\nC-a g    write a screenshot of the screen (x86vm-DATE-TIME.png)\r\n' +
  'C-a a    send C-a to the guest\r\n';

export type ConsoleAction = { kind: 'quit' } | { kind: 'help' } | { kind: 'snapshot' } | { kind: 'pause' } | { kind: 'screenshot' };

export class EscapeFilter {
  private escaped = false;

  /** splits typed bytes into guest input and console actions (in order of appearance) */
  feed(bytes: ArrayLike<number>): { input: number[]; actions: ConsoleAction[] } {
    const input: number[] = [];
    const actions: ConsoleAction[] = [];
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i] & 0xff;
      if (!this.escaped) {
        if (b === CTRL_A) this.escaped = true;
        else input.push(b);
        continue;
      }
      this.escaped = false;
      switch (b) {
        case 0x78: // x
        case 0x58: // X
          actions.push({ kind: 'quit' });
          return { input, actions };
        case 0x68: // h
        case 0x48: // H
        case 0x3f: // ?
          actions.push({ kind: 'help' });
          break;
        case 0x73: // s
        case 0x53: // S
          actions.push({ kind: 'snapshot' });
          break;
        case 0x70: // p
        case 0x50: // P
          actions.push({ kind: 'pause' });
          break;
        case 0x67: // g
        case 0x47: // G
          actions.push({ kind: 'screenshot' });
          break;
        case 0x61: // a
        case 0x41: // A
        case CTRL_A:
          input.push(CTRL_A);
          break;
        default:
          break;
      }
    }
    return { input, actions };
  }
}
