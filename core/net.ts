/**
 * Ethernet plumbing shared by the NICs (devices/ne2000.ts, devices/virtio-net.ts), the hosts' transports
 * (node/net-*.ts, web/net-broadcast.ts) and the user-mode NAT: frames, ports, in-process cables and a
 * learning switch. Nothing here uses Node or DOM APIs.
 *
 * A frame is a plain Uint8Array holding one Ethernet frame from the destination MAC to the end of the
 * payload (no preamble, no FCS). A NetPort is one end of a cable: send() puts a frame on the cable towards
 * the far end, onFrame() says where frames from the far end go. Receivers must not modify a frame they are
 * given (a switch hands one array to every port it floods to) and must not keep it past their callback
 * without copying.
 *
 * Delivery is never synchronous: a frame sent by a guest NIC reaches the far end from the host's event
 * loop (a microtask, a MessagePort message, a socket read), never from inside the sending machine's CPU
 * loop. Delivery into a guest NIC therefore always happens between two of its machine's slices, and a
 * deterministic machine sees the same frames at the same instructions for the same input order.
 *
 * The switch (NetSwitch) learns which port each source MAC lives behind, forwards unicast frames to the
 * learned port, floods broadcast, multicast and unknown destinations to every other port, and forgets
 * entries after `agingMs` without traffic from that MAC (300 s as in IEEE 802.1D). It drops — counting,
 * never throwing — runts (< 14 bytes), oversize frames (> 1518 bytes: 1514 plus an 802.1Q tag), anything
 * that is not a Uint8Array, and frames whose source MAC is a group address. A capture hook sees every
 * frame the switch accepted (core/pcap.ts turns them into a pcap file).
 */

/** the smallest frame carrying a whole Ethernet header */
export const ETH_HEADER = 14;
/** the largest untagged frame without FCS */
export const ETH_MAX_FRAME = 1514;
/** the largest frame with one 802.1Q tag */
export const ETH_MAX_TAGGED = 1518;
/** the minimum frame a transmitter pads to (without FCS) */
export const ETH_MIN_FRAME = 60;

export type FrameHandler = (frame: Uint8Array) => void;

/** one end of a cable */
export interface NetPort {
  /** sends a frame towards the far end (delivered later, from the event loop) */
  send(frame: Uint8Array): void;
  /** where frames arriving from the far end go (one handler; a later call replaces it) */
  onFrame(handler: FrameHandler): void;
  /** called when the far end goes away (a closed socket or worker), if the transport can tell */
  onClose?(handler: () => void): void;
  /** unplugs this end */
  close(): void;
}

/** a frame that is not a well-formed Ethernet frame: why, or null when it is fine */
export function frameProblem(frame: unknown): string | null {
  if (!(frame instanceof Uint8Array)) return 'not a byte array';
  if (frame.length < ETH_HEADER) return `runt (${frame.length} bytes)`;
  if (frame.length > ETH_MAX_TAGGED) return `oversize (${frame.length} bytes)`;
  return null;
}

/** the 48-bit MAC at `off` as a number (exact: below 2^53) */
export function macKey(frame: Uint8Array, off: number): number {
  return (
    (frame[off] * 0x10000 + ((frame[off + 1] << 8) | frame[off + 2])) * 0x1000000 +
    ((frame[off + 3] << 16) | (frame[off + 4] << 8) | frame[off + 5])
  );
}

/** "52:54:00:12:34:56" → 6 bytes; throws a RangeError naming the text when it is not a MAC */
export function parseMac(text: string): Uint8Array {
  const m = /^([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})$/i.exec(text.trim());
  if (!m) throw new RangeError(`'${text}' is not a MAC address (like 52:54:00:12:34:56)`);
  const mac = new Uint8Array(6);
  for (let i = 0; i < 6; i++) mac[i] = parseInt(m[i + 1], 16);
  if (mac[0] & 1) throw new RangeError(`'${text}' is a multicast address; a NIC needs a unicast MAC`);
  return mac;
}

export function formatMac(mac: ArrayLike<number>, off = 0): string {
  const parts: string[] = [];
  for (let i = 0; i < 6; i++) parts.push((mac[off + i] & 0xff).toString(16).padStart(2, '0'));
  return parts.join(':');
}

/**
 * Two connected cable ends inside one process: what one end sends, the other receives from a microtask
 * (so a machine never calls into another machine, or into itself, from its own CPU loop).
 */
export function netPair(): [NetPort, NetPort] {
  class End implements NetPort {
    peer!: End;
    handler: FrameHandler | null = null;
    closeHandler: (() => void) | null = null;
    closed = false;
    private readonly queue: Uint8Array[] = [];
    private scheduled = false;
    send(frame: Uint8Array): void {
      if (this.closed || this.peer.closed) return;
      this.peer.enqueue(frame);
    }
    enqueue(frame: Uint8Array): void {
      this.queue.push(frame);
      if (this.scheduled) return;
      this.scheduled = true;
      queueMicrotask(() => this.drain());
    }
    private drain(): void {
      this.scheduled = false;
      const frames = this.queue.splice(0);
      for (const f of frames) {
        if (this.closed) return;
        this.handler?.(f);
      }
    }
    onFrame(handler: FrameHandler): void {
      this.handler = handler;
    }
    onClose(handler: () => void): void {
      this.closeHandler = handler;
    }
    close(): void {
      if (this.closed) return;
      this.closed = true;
      this.queue.length = 0;
      const p = this.peer;
      if (!p.closed) queueMicrotask(() => p.closeHandler?.());
    }
  }
  const a = new End();
  const b = new End();
  a.peer = b;
  b.peer = a;
  return [a, b];
}

export interface SwitchOptions {
  /** milliseconds, for aging (default: performance.now when available, else Date.now) */
  now?: () => number;
  /** forget a MAC after this long without frames from it (default 300 000 ms) */
  agingMs?: number;
  /** at most this many learned MACs (default 4096); beyond, the oldest entry makes room */
  maxMacs?: number;
}

export interface SwitchStats {
  /** frames accepted */
  frames: number;
  /** frames forwarded to one learned port */
  forwarded: number;
  /** frames flooded */
  flooded: number;
  /** dropped: runts, oversize, not bytes, group source MAC */
  runts: number;
  oversize: number;
  garbage: number;
  /** unicast to the port it came from (the destination lives there) */
  filtered: number;
}

/** a port of the switch, as returned by connect() */
export interface SwitchPort {
  readonly id: number;
  readonly name: string;
  /** frames received from this port / sent out of it */
  rx: number;
  tx: number;
  /** dropped malformed frames from this port */
  dropped: number;
}

interface PortEntry extends SwitchPort {
  link: NetPort;
  open: boolean;
}

interface MacEntry {
  port: PortEntry;
  seen: number;
}

/** a frame as seen by a capture: the port it came in on, and the switch's time in ms */
export type CaptureHook = (frame: Uint8Array, port: SwitchPort, timeMs: number) => void;

export class NetSwitch {
  readonly stats: SwitchStats = { frames: 0, forwarded: 0, flooded: 0, runts: 0, oversize: 0, garbage: 0, filtered: 0 };
  private readonly ports: PortEntry[] = [];
  private readonly table = new Map<number, MacEntry>();
  private readonly now: () => number;
  private readonly agingMs: number;
  private readonly maxMacs: number;
  private nextId = 1;
  private readonly captures: CaptureHook[] = [];

  constructor(options: SwitchOptions = {}) {
    const perf = (globalThis as { performance?: { now(): number } }).performance;
    this.now = options.now ?? (perf ? () => perf.now() : () => Date.now());
    this.agingMs = options.agingMs ?? 300_000;
    this.maxMacs = options.maxMacs ?? 4096;
  }

  /** plugs a cable end into a new port; frames from it are switched, frames for it are sent to it */
  connect(link: NetPort, name = ''): SwitchPort {
    const id = this.nextId++;
    const port: PortEntry = { id, name: name || `port${id}`, rx: 0, tx: 0, dropped: 0, link, open: true };
    this.ports.push(port);
    link.onFrame((frame) => this.input(port, frame));
    link.onClose?.(() => this.disconnect(port));
    return port;
  }

  /** unplugs a port (its learned MACs are forgotten) */
  disconnect(p: SwitchPort): void {
    const i = this.ports.findIndex((x) => x.id === p.id);
    if (i < 0) return;
    const port = this.ports[i];
    port.open = false;
    this.ports.splice(i, 1);
    for (const [k, e] of this.table) if (e.port === port) this.table.delete(k);
    try {
      port.link.close();
    } catch {
      // already gone
    }
  }

  /** every frame the switch accepts goes to `hook` too (several hooks may be added) */
  addCapture(hook: CaptureHook): void {
    this.captures.push(hook);
  }

  get portCount(): number {
    return this.ports.length;
  }

  /** the port a MAC was learned on (undefined when unknown or aged out) */
  lookup(mac: Uint8Array | number): SwitchPort | undefined {
    const key = typeof mac === 'number' ? mac : macKey(mac, 0);
    const e = this.table.get(key);
    if (!e) return undefined;
    if (this.now() - e.seen > this.agingMs) {
      this.table.delete(key);
      return undefined;
    }
    return e.port;
  }

  /** the number of MACs in the table (aged entries included until next touched) */
  get macCount(): number {
    return this.table.size;
  }

  /** a frame arriving on `port` (also callable directly, e.g. by tests) */
  input(port: SwitchPort, frame: unknown): void {
    const p = port as PortEntry;
    if (!p.open) return;
    if (!(frame instanceof Uint8Array)) {
      this.stats.garbage++;
      p.dropped++;
      return;
    }
    if (frame.length < ETH_HEADER) {
      this.stats.runts++;
      p.dropped++;
      return;
    }
    if (frame.length > ETH_MAX_TAGGED) {
      this.stats.oversize++;
      p.dropped++;
      return;
    }
    if (frame[6] & 1) {
      // a group address as source: not a valid frame
      this.stats.garbage++;
      p.dropped++;
      return;
    }
    p.rx++;
    this.stats.frames++;
    const now = this.now();
    for (const c of this.captures) c(frame, p, now);
    this.learn(macKey(frame, 6), p, now);
    if (frame[0] & 1) {
      this.flood(p, frame);
      return;
    }
    const dst = this.table.get(macKey(frame, 0));
    if (!dst || now - dst.seen > this.agingMs || !dst.port.open) {
      if (dst) this.table.delete(macKey(frame, 0));
      this.flood(p, frame);
      return;
    }
    if (dst.port === p) {
      this.stats.filtered++;
      return;
    }
    this.stats.forwarded++;
    this.out(dst.port, frame);
  }

  private learn(key: number, port: PortEntry, now: number): void {
    const e = this.table.get(key);
    if (e) {
      e.port = port;
      e.seen = now;
      return;
    }
    if (this.table.size >= this.maxMacs) {
      // drop aged entries first, else the oldest one
      let oldestKey = -1;
      let oldest = Infinity;
      for (const [k, v] of this.table) {
        if (now - v.seen > this.agingMs) this.table.delete(k);
        else if (v.seen < oldest) {
          oldest = v.seen;
          oldestKey = k;
        }
      }
      if (this.table.size >= this.maxMacs && oldestKey >= 0) this.table.delete(oldestKey);
    }
    this.table.set(key, { port, seen: now });
  }

  private flood(from: PortEntry, frame: Uint8Array): void {
    this.stats.flooded++;
    for (const p of this.ports) if (p !== from) this.out(p, frame);
  }

  private out(p: PortEntry, frame: Uint8Array): void {
    p.tx++;
    try {
      p.link.send(frame);
    } catch {
      // a transport that fails to send loses the frame, as a cable would
    }
  }

  /** unplugs every port */
  close(): void {
    for (const p of this.ports.slice()) this.disconnect(p);
  }
}

/**
 * What a NIC device offers its host: the MAC, the cable end it is plugged into and the link state.
 * Both NICs implement it.
 */
export interface NetworkCard {
  readonly name: string;
  readonly mac: Uint8Array;
  /** plugs the card into a cable end (null unplugs it; the link goes down) */
  attach(port: NetPort | null): void;
  /** link state as the guest sees it (virtio-net reports it; the NE2000 has no link bit) */
  setLink(up: boolean): void;
  readonly linkUp: boolean;
}

/** the default MAC of NIC number `index` in a VM: QEMU's 52:54:00:12:34:56, counting up */
export function defaultMac(index = 0): Uint8Array {
  return Uint8Array.of(0x52, 0x54, 0x00, 0x12, 0x34, (0x56 + index) & 0xff);
}

/** a random locally administered unicast MAC in QEMU's 52:54:00 range, from `random` (0 ≤ x < 1) */
export function randomMac(random: () => number = Math.random): Uint8Array {
  return Uint8Array.of(0x52, 0x54, 0x00, Math.floor(random() * 256), Math.floor(random() * 256), Math.floor(random() * 256));
}

/**
 * The 802.3 CRC-32 of a frame (the multicast filters of the NICs hash destination MACs with it).
 * Bit-reflected polynomial 0xEDB88320, initial value all ones, result complemented.
 */
const CRC_TABLE = (() => {
  const t = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  return t;
})();

export function crc32(bytes: Uint8Array, off = 0, len = bytes.length - off): number {
  let c = -1;
  for (let i = off; i < off + len; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

/**
 * The 6-bit multicast filter index of a destination MAC, as the DP8390 and virtio's MAC table hash it:
 * the top 6 bits of the big-endian (MSB-first, not complemented) Ethernet CRC of the 6 address bytes,
 * which is the bit reversal of the low 6 bits of the reflected CRC register.
 */
export function multicastHashIndex(frame: Uint8Array, off = 0): number {
  const r = ~crc32(frame, off, 6) >>> 0;
  let idx = 0;
  for (let i = 0; i < 6; i++) idx |= ((r >>> i) & 1) << (5 - i);
  return idx;
}
