/**
 * The guest-facing half of one TCP connection of the user-mode NAT: we play the far end of the guest's
 * connection (to 10.0.2.2:PORT or an allowed address) and relay its byte stream to a host socket.
 * A small, conservative TCP (RFC 793/9293, RFC 6298's timer rules simplified):
 *
 * - Opening: passive (guest SYN → the host connects → we answer SYN-ACK, or RST when the host refuses)
 *   or active (a hostfwd connection arrives → we send SYN to the guest). Our SYN carries MSS 1460; no
 *   window scaling, timestamps or SACK, so both windows are plain 16-bit values.
 * - Receiving: only the next in-order segment is taken (others are dropped and answered with an ACK for
 *   what we have, so the guest retransmits); every segment that carries data or FIN is acknowledged at
 *   once. Our window is 64 KiB minus what the host socket still has to write (flow control end to end).
 * - Sending: host bytes queue in `sendQueue`; we send MSS-sized segments while they fit in the guest's
 *   window, keep them until acknowledged, and retransmit from the oldest unacknowledged byte when the
 *   retransmission timer (RTO 200 ms, doubling, at most 4 s) fires. A zero window is probed with one byte
 *   on the same timer. After MAX_RETRIES expiries without progress the connection is reset.
 * - Closing: a guest FIN half-closes the host socket (end()); the host's end is sent as our FIN once
 *   every queued byte has gone out. RST from the guest destroys the host socket; a host error resets the
 *   guest's connection. The connection is finished when both FINs are acknowledged; it then lingers in
 *   TIME_WAIT for LINGER_MS to acknowledge a retransmitted FIN.
 */
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, seqAdd, seqDiff, seqLe, seqLt, type TcpSegment } from './net-proto';

export const OUR_MSS = 1460;
export const RCV_WINDOW = 65535;
export const RTO_MIN_MS = 200;
export const RTO_MAX_MS = 4000;
export const MAX_RETRIES = 12;
export const LINGER_MS = 2000;
/** the host socket is paused while more than this is queued for the guest */
export const SEND_QUEUE_HIGH = 256 * 1024;

export type TcpState = 'connecting' | 'syn-sent' | 'syn-rcvd' | 'established' | 'closed' | 'time-wait';

/** what a connection needs from its host socket */
export interface TcpHostSide {
  /** bytes from the guest, in order */
  write(data: Uint8Array): void;
  /** the guest closed its sending side */
  end(): void;
  /** tear the host socket down (guest RST, or we gave up) */
  destroy(): void;
  /** stop / restart reading from the host (our queue towards the guest is full / has room) */
  pause(): void;
  resume(): void;
  /** bytes written to the host socket and not yet flushed */
  readonly buffered: number;
}

/** a segment we send: the NAT adds addresses and ports */
export interface TcpEmit {
  seq: number;
  ack: number;
  flags: number;
  window: number;
  mss?: number;
  data?: Uint8Array;
}

export interface TcpTimers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

export const NODE_TIMERS: TcpTimers = {
  set: (fn, ms) => {
    const t = setTimeout(fn, ms);
    (t as { unref?: () => void }).unref?.();
    return t;
  },
  clear: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

/** bytes waiting to be sent and acknowledged, in arrival order */
export class ByteQueue {
  private chunks: Uint8Array[] = [];
  private head = 0;
  length = 0;

  push(b: Uint8Array): void {
    if (b.length === 0) return;
    this.chunks.push(b);
    this.length += b.length;
  }

  /** a copy of n bytes starting `offset` bytes in */
  peek(offset: number, n: number): Uint8Array {
    const out = new Uint8Array(Math.max(0, Math.min(n, this.length - offset)));
    let skip = offset + this.head;
    let o = 0;
    for (const c of this.chunks) {
      if (o >= out.length) break;
      if (skip >= c.length) {
        skip -= c.length;
        continue;
      }
      const take = Math.min(c.length - skip, out.length - o);
      out.set(c.subarray(skip, skip + take), o);
      o += take;
      skip = 0;
    }
    return out;
  }

  /** forgets the first n bytes */
  drop(n: number): void {
    n = Math.min(n, this.length);
    this.length -= n;
    n += this.head;
    while (this.chunks.length && n >= this.chunks[0].length) {
      n -= this.chunks[0].length;
      this.chunks.shift();
    }
    this.head = n;
  }
}

export class TcpConn {
  state: TcpState;
  /** our side: oldest unacknowledged, next to send, initial */
  sndUna: number;
  sndNxt: number;
  /** the guest's window and MSS */
  sndWnd = 0;
  mss = 536;
  /** guest side: next sequence number expected */
  rcvNxt = 0;
  readonly sendQueue = new ByteQueue();
  /** the host ended its side: FIN after the queue */
  private hostEnded = false;
  private finSent = false;
  private finSeq = 0;
  private finAcked = false;
  guestFin = false;
  private timer: unknown = null;
  private rto = RTO_MIN_MS;
  private retries = 0;
  private paused = false;
  private lastWindow = RCV_WINDOW;
  host: TcpHostSide | null = null;
  /** called when the connection is finished and may be forgotten */
  onDone: () => void = () => {};
  private readonly emit: (s: TcpEmit) => void;
  private readonly timers: TcpTimers;
  /** statistics */
  readonly stats = { segmentsOut: 0, retransmits: 0, bytesIn: 0, bytesOut: 0 };

  constructor(emit: (s: TcpEmit) => void, iss: number, state: TcpState, timers: TcpTimers = NODE_TIMERS) {
    this.emit = emit;
    this.timers = timers;
    this.sndUna = iss >>> 0;
    this.sndNxt = iss >>> 0;
    this.state = state;
  }

  private get window(): number {
    const buffered = this.host ? this.host.buffered : 0;
    return Math.max(0, Math.min(RCV_WINDOW, RCV_WINDOW - buffered));
  }

  private send(flags: number, seq: number, data?: Uint8Array, mss?: number): void {
    const window = this.window;
    this.lastWindow = window;
    this.stats.segmentsOut++;
    this.emit({ seq, ack: flags & TCP_ACK ? this.rcvNxt : 0, flags, window, mss, data });
  }

  private ack(): void {
    this.send(TCP_ACK, this.sndNxt);
  }

  // ---- opening ----

  /** passive open: the guest's SYN arrived (state 'connecting' until the host socket connects) */
  guestSyn(seg: TcpSegment): void {
    this.rcvNxt = seqAdd(seg.seq, 1);
    this.sndWnd = seg.window;
    if (seg.mss) this.mss = Math.min(seg.mss, OUR_MSS);
  }

  /** the host connected: answer the guest's SYN */
  hostConnected(host: TcpHostSide): void {
    this.host = host;
    if (this.state !== 'connecting') return;
    this.state = 'syn-rcvd';
    this.sendSyn();
  }

  /** active open (hostfwd): send our SYN */
  activeOpen(host: TcpHostSide): void {
    this.host = host;
    this.state = 'syn-sent';
    this.sendSyn();
  }

  private sendSyn(): void {
    const flags = this.state === 'syn-rcvd' ? TCP_SYN | TCP_ACK : TCP_SYN;
    this.send(flags, this.sndUna, undefined, OUR_MSS);
    this.sndNxt = seqAdd(this.sndUna, 1);
    this.armTimer();
  }

  /** the host refused or failed before we answered: reset the guest's attempt */
  refuse(): void {
    this.send(TCP_RST | TCP_ACK, 0);
    this.finish();
  }

  // ---- host side events ----

  /** bytes from the host for the guest */
  hostData(b: Uint8Array): void {
    if (this.state === 'closed' || this.state === 'time-wait' || this.hostEnded) return;
    this.sendQueue.push(b);
    this.stats.bytesOut += b.length;
    if (this.sendQueue.length > SEND_QUEUE_HIGH && !this.paused) {
      this.paused = true;
      this.host?.pause();
    }
    this.output();
  }

  hostEnd(): void {
    if (this.hostEnded) return;
    this.hostEnded = true;
    this.output();
  }

  /** the host socket failed or was destroyed: reset the guest's connection */
  hostError(): void {
    if (this.state === 'closed' || this.state === 'time-wait') return;
    if (this.state !== 'connecting') this.send(TCP_RST | TCP_ACK, this.sndNxt);
    this.finish();
  }

  /** the host socket flushed: tell the guest our window opened if it had closed */
  hostDrained(): void {
    if (this.state === 'established' && this.lastWindow < RCV_WINDOW / 2 && this.window >= RCV_WINDOW / 2) this.ack();
  }

  // ---- segments from the guest ----

  input(seg: TcpSegment): void {
    if (this.state === 'closed') return;
    if (this.state === 'time-wait') {
      this.lingerInput(seg);
      return;
    }
    if (seg.flags & TCP_RST) {
      // accept a reset that falls in our receive window (or answers our SYN)
      if (this.state === 'syn-sent' ? seg.flags & TCP_ACK && seg.ack === this.sndNxt : seqLe(this.rcvNxt, seg.seq) && seqLt(seg.seq, seqAdd(this.rcvNxt, RCV_WINDOW + 1))) {
        this.host?.destroy();
        this.finish();
      }
      return;
    }
    if (this.state === 'connecting') return; // the host has not answered yet: the guest retransmits its SYN
    if (this.state === 'syn-sent') {
      if ((seg.flags & (TCP_SYN | TCP_ACK)) === (TCP_SYN | TCP_ACK) && seg.ack === this.sndNxt) {
        this.rcvNxt = seqAdd(seg.seq, 1);
        this.sndUna = seg.ack;
        this.sndWnd = seg.window;
        if (seg.mss) this.mss = Math.min(seg.mss, OUR_MSS);
        this.state = 'established';
        this.stopTimer();
        this.ack();
        this.output();
      } else if (seg.flags & TCP_ACK) {
        this.send(TCP_RST, seg.ack);
      }
      return;
    }
    if (seg.flags & TCP_SYN) {
      // a retransmitted SYN (our SYN-ACK was lost) or garbage: answer with what we have
      if (this.state === 'syn-rcvd') {
        this.send(TCP_SYN | TCP_ACK, this.sndUna, undefined, OUR_MSS);
      } else {
        this.ack();
      }
      return;
    }
    if (!(seg.flags & TCP_ACK)) return;
    // acknowledgements
    if (seqLt(this.sndUna, seg.ack) && seqLe(seg.ack, this.sndNxt)) {
      let acked = seqDiff(seg.ack, this.sndUna);
      if (this.state === 'syn-rcvd') {
        this.state = 'established';
        acked--; // our SYN
      }
      if (this.finSent && seg.ack === this.sndNxt) {
        this.finAcked = true;
        acked--; // our FIN
      }
      if (acked > 0) this.sendQueue.drop(acked);
      this.sndUna = seg.ack;
      this.retries = 0;
      this.rto = RTO_MIN_MS;
      this.stopTimer();
      if (this.sndUna !== this.sndNxt) this.armTimer();
      if (this.paused && this.sendQueue.length < SEND_QUEUE_HIGH / 2) {
        this.paused = false;
        this.host?.resume();
      }
    } else if (seqLt(this.sndNxt, seg.ack)) {
      // acknowledges something we never sent
      this.ack();
      return;
    }
    if (this.state === 'syn-rcvd') return;
    this.sndWnd = seg.window;
    // data and FIN
    const len = seg.data.length;
    if (len > 0 || seg.flags & TCP_FIN) {
      if (seg.seq === this.rcvNxt && !this.guestFin) {
        const room = this.window;
        const take = Math.min(len, room);
        if (take > 0) {
          this.rcvNxt = seqAdd(this.rcvNxt, take);
          this.stats.bytesIn += take;
          this.host?.write(take === len ? seg.data : seg.data.subarray(0, take));
        }
        if (seg.flags & TCP_FIN && take === len) {
          this.rcvNxt = seqAdd(this.rcvNxt, 1);
          this.guestFin = true;
          this.host?.end();
        }
      }
      this.ack();
    }
    this.output();
    this.checkDone();
  }

  // ---- sending ----

  /** sends what the guest's window allows, then our FIN when the host has ended and all is out */
  output(): void {
    if (this.state !== 'established') return;
    for (;;) {
      const inFlight = seqDiff(this.sndNxt, this.sndUna) - (this.finSent ? 1 : 0);
      const unsent = this.sendQueue.length - inFlight;
      if (unsent <= 0) break;
      const room = this.sndWnd - inFlight;
      if (room <= 0) break;
      const n = Math.min(unsent, room, this.mss);
      const data = this.sendQueue.peek(inFlight, n);
      this.send(TCP_ACK | (n === unsent ? TCP_PSH : 0), this.sndNxt, data);
      this.sndNxt = seqAdd(this.sndNxt, n);
    }
    const inFlight = seqDiff(this.sndNxt, this.sndUna);
    if (this.hostEnded && !this.finSent && inFlight === this.sendQueue.length) {
      this.finSent = true;
      this.finSeq = this.sndNxt;
      this.send(TCP_FIN | TCP_ACK, this.sndNxt);
      this.sndNxt = seqAdd(this.sndNxt, 1);
    }
    if (this.sndUna !== this.sndNxt || this.sendQueue.length > 0) this.armTimer();
    this.checkDone();
  }

  private armTimer(): void {
    if (this.timer !== null) return;
    this.timer = this.timers.set(() => this.expire(), this.rto);
  }

  private stopTimer(): void {
    if (this.timer === null) return;
    this.timers.clear(this.timer);
    this.timer = null;
  }

  private expire(): void {
    this.timer = null;
    if (this.state === 'closed' || this.state === 'time-wait') return;
    // probing a zero window is not a failure: the guest's application may just be slow to read
    const probing = this.state === 'established' && this.sndWnd === 0;
    if (!probing && ++this.retries > MAX_RETRIES) {
      this.send(TCP_RST | TCP_ACK, this.sndNxt);
      this.host?.destroy();
      this.finish();
      return;
    }
    this.rto = Math.min(this.rto * 2, RTO_MAX_MS);
    this.stats.retransmits++;
    if (this.state === 'syn-sent' || this.state === 'syn-rcvd') {
      this.send(this.state === 'syn-rcvd' ? TCP_SYN | TCP_ACK : TCP_SYN, this.sndUna, undefined, OUR_MSS);
    } else if (this.sendQueue.length > 0 && (this.sndUna !== this.sndNxt || this.sndWnd === 0)) {
      // the oldest unacknowledged segment again (or a one-byte probe of a zero window)
      const n = Math.min(this.sendQueue.length, this.sndWnd === 0 ? 1 : this.mss);
      this.send(TCP_ACK, this.sndUna, this.sendQueue.peek(0, n));
      if (seqLt(this.sndNxt, seqAdd(this.sndUna, n))) this.sndNxt = seqAdd(this.sndUna, n);
    } else if (this.finSent && !this.finAcked) {
      this.send(TCP_FIN | TCP_ACK, this.finSeq);
    }
    this.armTimer();
  }

  private checkDone(): void {
    if (this.state === 'established' && this.finAcked && this.guestFin) {
      this.state = 'time-wait';
      this.stopTimer();
      this.timer = this.timers.set(() => {
        this.timer = null;
        this.finish();
      }, LINGER_MS);
    }
  }

  /** in TIME_WAIT: a retransmitted FIN gets its ACK again */
  lingerInput(seg: TcpSegment): void {
    if (seg.flags & TCP_FIN) this.ack();
  }

  private finish(): void {
    this.stopTimer();
    const was = this.state;
    this.state = 'closed';
    if (was !== 'closed') this.onDone();
  }

  /** drops the connection silently (the NAT is shutting down) */
  abort(): void {
    this.stopTimer();
    this.state = 'closed';
  }
}
