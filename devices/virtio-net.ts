/**
 * virtio-net (virtio device ID 1, PCI 1AF4:1041) over the virtio 1.0 PCI transport (devices/virtio.ts).
 *
 * Written from the virtio 1.0 specification, 5.1 Network Device. Queues: 0 receiveq1, 1 transmitq1
 * (256 entries each); no control queue, no multiqueue, no offloads (no CSUM, GSO or MRG_RXBUF: the
 * driver posts whole-frame receive buffers).
 *
 * Features offered: MAC (5) and STATUS (16). Configuration space: mac[6] at 0x00, status (16 bits) at
 * 0x06 with LINK_UP (1); setLink() changes it and raises a configuration-change interrupt.
 *
 * Every buffer starts with the 12-byte virtio_net_hdr of VERSION_1 (flags, gso_type, hdr_len, gso_size,
 * csum_start, csum_offset, num_buffers). Transmit: the device reads the chain's readable bytes, skips the
 * header and sends the rest as one frame (frames under 14 or over 1518 bytes are dropped), then returns
 * the chain at once. Receive: a frame for our MAC, or broadcast, or multicast (without the control queue
 * the driver cannot ask for more or less) goes into the next receive chain behind a header with
 * num_buffers = 1 and everything else zero; a frame longer than the chain is dropped. With no receive
 * buffer posted, frames wait in a backlog of BACKLOG_FRAMES that drains when the driver posts buffers;
 * a frame that finds it full is lost. Nothing is received before DRIVER_OK or while the link is down.
 *
 * State: the transport's (devices/virtio.ts), the link bit, and the backlog (base64 frames).
 */
import type { Machine } from '../core/machine';
import type { Pc } from '../core/pc';
import { ETH_HEADER, ETH_MAX_TAGGED, defaultMac, type NetPort, type NetworkCard } from '../core/net';
import { devfn } from './pci';
import { VirtioPciDevice, freePciSlot, fromBase64, toBase64, type Virtqueue } from './virtio';

export const VIRTIO_ID_NET = 1;
export const VIRTIO_NET_F_MAC = 5;
export const VIRTIO_NET_F_STATUS = 16;
export const VIRTIO_NET_S_LINK_UP = 1;
export const VIRTIO_NET_HDR_BYTES = 12;
export const VIRTIO_NET_QUEUE_SIZE = 256;
export const VIRTIO_NET_RX = 0;
export const VIRTIO_NET_TX = 1;
export const BACKLOG_FRAMES = 256;
const CONFIG_SIZE = 8;

export interface VirtioNetOptions {
  mac?: Uint8Array;
  name?: string;
}

export interface VirtioNetState {
  linkUp: boolean;
  backlog: string[];
}

export class VirtioNet extends VirtioPciDevice implements NetworkCard {
  readonly mac: Uint8Array;
  private port: NetPort | null = null;
  private link = true;
  private backlog: Uint8Array[] = [];
  private readonly hdr = new Uint8Array(VIRTIO_NET_HDR_BYTES);
  readonly counters = { tx: 0, rx: 0, lost: 0, filtered: 0 };

  constructor(machine: Machine, options: VirtioNetOptions = {}) {
    super(machine, {
      name: options.name ?? 'virtio-net',
      deviceType: VIRTIO_ID_NET,
      classCode: 0x020000,
      features: [VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS],
      queueSizes: [VIRTIO_NET_QUEUE_SIZE, VIRTIO_NET_QUEUE_SIZE],
      configSize: CONFIG_SIZE,
    });
    this.mac = Uint8Array.from(options.mac ?? defaultMac());
    this.deviceConfig.set(this.mac, 0);
    this.writeStatus();
    this.hdr[10] = 1; // num_buffers
    this.captureResetState();
  }

  private writeStatus(): void {
    const v = this.link ? VIRTIO_NET_S_LINK_UP : 0;
    this.deviceConfig[6] = v;
    this.deviceConfig[7] = 0;
  }

  // ---- NetworkCard ----

  attach(port: NetPort | null): void {
    if (this.port && this.port !== port) this.port.onFrame(() => {});
    this.port = port;
    port?.onFrame((frame) => this.receive(frame));
  }

  setLink(up: boolean): void {
    if (up === this.link) return;
    this.link = up;
    if (!up) this.backlog = [];
    this.writeStatus();
    this.configChanged();
  }

  get linkUp(): boolean {
    return this.link;
  }

  // ---- queues ----

  protected override queueNotify(q: Virtqueue): void {
    if (q.index === VIRTIO_NET_TX) this.transmit(q);
    else if (q.index === VIRTIO_NET_RX) this.drainBacklog();
  }

  private transmit(q: Virtqueue): void {
    for (;;) {
      const chain = this.popChain(q);
      if (!chain) return;
      const len = chain.readTotal - VIRTIO_NET_HDR_BYTES;
      if (len >= ETH_HEADER && len <= ETH_MAX_TAGGED) {
        const frame = new Uint8Array(len);
        this.readFromChain(chain, VIRTIO_NET_HDR_BYTES, frame);
        this.counters.tx++;
        if (this.link && this.port) this.port.send(frame);
      }
      this.pushUsed(q, chain.head, 0);
    }
  }

  /** a frame from the wire (the host's event loop calls this between slices) */
  receive(frame: Uint8Array): void {
    if (!this.link || !this.running) return;
    if (frame.length < ETH_HEADER || frame.length > ETH_MAX_TAGGED) return;
    if (!(frame[0] & 1)) {
      for (let i = 0; i < 6; i++) {
        if (frame[i] !== this.mac[i]) {
          this.counters.filtered++;
          return;
        }
      }
    }
    if (this.backlog.length || !this.deliver(frame)) {
      if (this.backlog.length >= BACKLOG_FRAMES) {
        this.counters.lost++;
        return;
      }
      this.backlog.push(frame.slice());
    }
  }

  /** puts one frame in the next receive buffer; false when the driver has posted none */
  private deliver(frame: Uint8Array): boolean {
    const q = this.queues[VIRTIO_NET_RX];
    if (!this.running || this.availableCount(q) === 0) return false;
    const chain = this.popChain(q);
    if (!chain) return false;
    if (chain.writeTotal < VIRTIO_NET_HDR_BYTES + frame.length) {
      // the driver's buffer is too small for this frame: it is dropped, the buffer returned empty
      this.counters.lost++;
      this.pushUsed(q, chain.head, 0);
      return true;
    }
    this.writeToChain(chain, 0, this.hdr);
    this.writeToChain(chain, VIRTIO_NET_HDR_BYTES, frame);
    this.counters.rx++;
    this.pushUsed(q, chain.head, VIRTIO_NET_HDR_BYTES + frame.length);
    return true;
  }

  private drainBacklog(): void {
    while (this.backlog.length && this.deliver(this.backlog[0])) this.backlog.shift();
  }

  /** frames waiting for receive buffers */
  get backlogLength(): number {
    return this.backlog.length;
  }

  protected override driverOk(): void {
    this.drainBacklog();
  }

  protected override deviceReset(): void {
    this.backlog = [];
    this.writeStatus();
  }

  protected override saveDevice(): VirtioNetState {
    return { linkUp: this.link, backlog: this.backlog.map((f) => toBase64(f)) };
  }

  protected override loadDevice(s: unknown): void {
    const st = s as VirtioNetState | undefined;
    this.link = st?.linkUp !== false;
    this.backlog = (st?.backlog ?? []).map((t) => fromBase64(t).slice());
    this.writeStatus();
  }
}

/** adds a virtio-net PCI function to the PC (in the first free slot unless one is given) */
export function addVirtioNet(pc: Pc, options: VirtioNetOptions & { slot?: number } = {}): VirtioNet {
  const bus = pc.pci?.bus;
  if (!bus) throw new Error('virtio-net needs the PCI bus (createPc with pci enabled)');
  const slot = options.slot ?? freePciSlot(bus);
  return bus.add(new VirtioNet(pc.machine, options), devfn(slot, 0));
}
