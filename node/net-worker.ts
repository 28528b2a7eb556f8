/**
 * A NetPort over a worker_threads MessagePort: a VM in a worker thread plugs its NIC into one end of a
 * MessageChannel, the switch in another thread holds the other end. Each message is one frame (a
 * Uint8Array, copied by structured clone); anything else that arrives is dropped here, and the switch
 * counts garbage it receives. The port's 'close' event (the other thread closed it or exited) unplugs the
 * cable.
 */
import type { MessagePort } from 'node:worker_threads';
import type { FrameHandler, NetPort } from '../core/net';

export function messagePortNet(port: MessagePort): NetPort & { readonly stats: { garbage: number } } {
  const stats = { garbage: 0 };
  let handler: FrameHandler | null = null;
  let closeHandler: (() => void) | null = null;
  let closed = false;
  port.on('message', (m: unknown) => {
    if (closed) return;
    if (m instanceof Uint8Array) handler?.(m);
    else stats.garbage++; // not a frame: counted and dropped
  });
  port.on('close', () => {
    if (closed) return;
    closed = true;
    closeHandler?.();
  });
  port.start();
  return {
    stats,
    send(frame: Uint8Array): void {
      if (closed) return;
      try {
        port.postMessage(frame);
      } catch {
        // the other side is gone: the frame is lost, as on a cut cable
      }
    },
    onFrame(h: FrameHandler): void {
      handler = h;
    },
    onClose(h: () => void): void {
      closeHandler = h;
    },
    close(): void {
      if (closed) return;
      closed = true;
      port.close();
    },
  };
}

/**
 * A port that sends anything (for tests of the switch's garbage handling): not a NetPort for NICs, it
 * posts whatever it is given.
 */
export function rawMessagePoster(port: MessagePort): (message: unknown) => void {
  return (message) => port.postMessage(message);
}
