/**
 * The seam between the machine's display adapter and the page's canvas (worker side).
 *
 * The worker polls the VGA (devices/vga.ts, a core/screen.ts Screen) every frame interval while the guest
 * runs; the changed rectangles are copied out of the frame and posted to the page as a FrameUpdate (their
 * buffers transferred), which draws them with putImageData. Keyboard and mouse go the other way, from the
 * focused canvas to the i8042 (VmApi.key / mouse).
 */
import type { Screen } from '../core/screen';
import type { FrameUpdate } from './protocol';

export interface Display {
  /** the screen's changes since the last call, or null when nothing changed */
  poll(): FrameUpdate | null;
  /** everything, for a page that has just (re)attached */
  full(): FrameUpdate | null;
}

/** a Display over any Screen */
export function screenDisplay(screen: Screen): Display {
  const poll = (): FrameUpdate | null => {
    const u = screen.render();
    if (!u.rects.length && !u.resized) return null;
    const f = u.frame;
    return {
      width: f.width,
      height: f.height,
      full: u.resized,
      rects: u.rects.map((r) => ({ x: r.x, y: r.y, w: r.w, h: r.h, pixels: f.copyRect(r) })),
    };
  };
  return {
    poll,
    full() {
      screen.invalidate();
      return poll();
    },
  };
}
