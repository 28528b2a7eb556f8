/**
 * A NetPort over a BroadcastChannel: VMs in several tabs (or workers) of one origin that open the same
 * channel name share one Ethernet segment, like a hub: every frame reaches every other member, and each
 * NIC keeps what is addressed to it. Messages that are not byte arrays are ignored.
 */
import type { FrameHandler, NetPort } from '../core/net';
import { frameProblem } from '../core/net';

export function broadcastChannelPort(name: string): NetPort {
  const ch = new BroadcastChannel(`x86vm-net:${name}`);
  let handler: FrameHandler | null = null;
  let closed = false;
  ch.onmessage = (ev: MessageEvent) => {
    if (closed) return;
    const f: unknown = ev.data;
    if (frameProblem(f) === null) handler?.(f as Uint8Array);
  };
  return {
    send(frame: Uint8Array): void {
      if (!closed) ch.postMessage(frame);
    },
    onFrame(h: FrameHandler): void {
      handler = h;
    },
    close(): void {
      if (closed) return;
      closed = true;
      ch.close();
    },
  };
}
