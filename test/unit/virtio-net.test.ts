/**
 * virtio-net driven by the hand-played virtio driver (test/unit/virtio-driver.ts): features and
 * configuration (MAC, link status), transmit with the 12-byte header, receive into posted buffers,
 * the backlog while no buffer is posted, the address filter, link down, and a snapshot with frames waiting.
 */
import { describe, expect, it } from 'vitest';
import { netPair, type NetPort } from '../../core/net';
import {
  addVirtioNet,
  VirtioNet,
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_STATUS,
  VIRTIO_NET_HDR_BYTES,
  VIRTIO_NET_RX,
  VIRTIO_NET_TX,
} from '../../devices/virtio-net';
import { VIRTIO_F_VERSION_1 } from '../../devices/virtio';
import { Driver, makePc } from './virtio-driver';

const MAC = Uint8Array.of(0x52, 0x54, 0x00, 0x01, 0x02, 0x03);

function setup(): { drv: Driver; net: VirtioNet; far: NetPort; sent: Uint8Array[] } {
  let net!: VirtioNet;
  const pc = makePc([(p) => void (net = addVirtioNet(p, { mac: MAC }))]);
  const drv = new Driver(pc, net);
  const [a, b] = netPair();
  net.attach(a);
  const sent: Uint8Array[] = [];
  b.onFrame((f) => sent.push(f.slice()));
  return { drv, net, far: b, sent };
}

function frame(dst: ArrayLike<number>, len: number, seed: number): Uint8Array {
  const f = new Uint8Array(len);
  f.set(dst, 0);
  f.set([0x52, 0x54, 0x00, 0x09, 0x09, 0x09], 6);
  f[12] = 0x08;
  for (let i = 14; i < len; i++) f[i] = (i * 13 + seed) & 0xff;
  return f;
}

const tick = (): Promise<void> => new Promise((r) => queueMicrotask(r));

/** posts n receive buffers of `size` bytes; returns their addresses by head */
function postRx(drv: Driver, n: number, size = 1526): Map<number, number> {
  const bufs = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const a = drv.alloc(size);
    const head = drv.add(VIRTIO_NET_RX, [{ addr: a, len: size, write: true }]);
    bufs.set(head, a);
  }
  drv.kick(VIRTIO_NET_RX);
  return bufs;
}

describe('virtio-net', () => {
  it('offers MAC and STATUS, shows the MAC and link state in its configuration, and reports link changes', () => {
    const { drv, net } = setup();
    expect(net.config[2] | (net.config[3] << 8)).toBe(0x1041);
    const [lo, hi] = drv.deviceFeatures();
    expect((lo >>> VIRTIO_NET_F_MAC) & 1).toBe(1);
    expect((lo >>> VIRTIO_NET_F_STATUS) & 1).toBe(1);
    expect((hi >>> (VIRTIO_F_VERSION_1 - 32)) & 1).toBe(1);
    drv.init();
    expect([0, 1, 2, 3, 4, 5].map((i) => drv.devCfg8(i))).toEqual(Array.from(MAC));
    expect(drv.devCfg16(6)).toBe(1);
    drv.readIsr();
    net.setLink(false);
    expect(drv.devCfg16(6)).toBe(0);
    expect(drv.irq).toBe(true);
    expect(drv.readIsr() & 2).toBe(2);
    net.setLink(true);
    expect(drv.devCfg16(6)).toBe(1);
  });

  it('transmits the bytes after the 12-byte header, with header and frame split across descriptors', async () => {
    const { drv, sent } = setup();
    drv.init();
    const f = frame([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 200, 1);
    const hdr = drv.alloc(VIRTIO_NET_HDR_BYTES);
    const data = drv.alloc(f.length);
    drv.put(data, f);
    drv.add(VIRTIO_NET_TX, [
      { addr: hdr, len: VIRTIO_NET_HDR_BYTES },
      { addr: data, len: 100 },
      { addr: data + 100, len: 100 },
    ]);
    // and one in a single descriptor, header included
    const one = drv.alloc(VIRTIO_NET_HDR_BYTES + 60);
    const f2 = frame([0x52, 0x54, 0, 0, 0, 7], 60, 2);
    drv.put(one + VIRTIO_NET_HDR_BYTES, f2);
    drv.add(VIRTIO_NET_TX, [{ addr: one, len: VIRTIO_NET_HDR_BYTES + 60 }]);
    // a runt is returned but not sent
    const runt = drv.alloc(VIRTIO_NET_HDR_BYTES + 5);
    drv.add(VIRTIO_NET_TX, [{ addr: runt, len: VIRTIO_NET_HDR_BYTES + 5 }]);
    drv.kick(VIRTIO_NET_TX);
    expect(drv.takeUsed(VIRTIO_NET_TX).length).toBe(3);
    await tick();
    expect(sent.map((s) => Array.from(s))).toEqual([Array.from(f), Array.from(f2)]);
  });

  it('receives into posted buffers behind a header with num_buffers = 1, keeps frames while none is posted, and filters unicast', async () => {
    const { drv, net, far } = setup();
    drv.init();
    const frames = [frame(MAC, 1514, 1), frame([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 42, 2), frame([0x01, 0, 0x5e, 0, 0, 1], 90, 3)];
    const other = frame([0x52, 0x54, 0, 0, 0, 0x77], 100, 4);
    far.send(frames[0]);
    far.send(other);
    far.send(frames[1]);
    far.send(frames[2]);
    await tick();
    expect(net.backlogLength).toBe(3); // nothing posted yet; the other MAC's frame was filtered
    expect(net.counters.filtered).toBe(1);
    const bufs = postRx(drv, 2);
    const used = drv.takeUsed(VIRTIO_NET_RX);
    expect(used.length).toBe(2);
    expect(drv.irq).toBe(true);
    for (const [i, u] of used.entries()) {
      const a = bufs.get(u.id)!;
      expect(u.len).toBe(VIRTIO_NET_HDR_BYTES + frames[i].length);
      const hdr = drv.get(a, VIRTIO_NET_HDR_BYTES);
      expect(Array.from(hdr)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
      expect(Array.from(drv.get(a + VIRTIO_NET_HDR_BYTES, frames[i].length))).toEqual(Array.from(frames[i]));
    }
    expect(net.backlogLength).toBe(1);
    const more = postRx(drv, 4);
    const u2 = drv.takeUsed(VIRTIO_NET_RX);
    expect(u2.length).toBe(1);
    expect(Array.from(drv.get(more.get(u2[0].id)! + VIRTIO_NET_HDR_BYTES, frames[2].length))).toEqual(Array.from(frames[2]));
    // with buffers posted, a frame goes straight in
    far.send(frames[1]);
    await tick();
    expect(drv.takeUsed(VIRTIO_NET_RX).length).toBe(1);
    // link down: nothing comes in and nothing goes out
    net.setLink(false);
    far.send(frames[1]);
    await tick();
    expect(drv.takeUsed(VIRTIO_NET_RX).length).toBe(0);
  });

  it('saves and restores the waiting frames and the link state', async () => {
    const a = setup();
    a.drv.init();
    for (let i = 0; i < 5; i++) a.far.send(frame(MAC, 300 + i, i));
    await tick();
    const state = JSON.parse(JSON.stringify(a.drv.pc.pci!.bus.saveState()));
    const b = setup();
    b.drv.pc.pci!.bus.loadState(state);
    expect(b.net.backlogLength).toBe(5);
    expect(b.net.linkUp).toBe(true);
    // link state: down travels with the snapshot (and frames waiting are dropped when it goes down)
    const c = setup();
    c.drv.init();
    c.net.setLink(false);
    const d = setup();
    d.drv.pc.pci!.bus.loadState(JSON.parse(JSON.stringify(c.drv.pc.pci!.bus.saveState())));
    expect(d.net.linkUp).toBe(false);
    expect(d.drv.devCfg16(6)).toBe(0);
    // the driver of the saved machine had its rings in the same places: copy them over with the RAM
    b.drv.pc.mem.mem8.set(a.drv.pc.mem.mem8);
    Object.assign(b.drv, { heap: (a.drv as unknown as { heap: number }).heap });
    b.drv.queues.push(...a.drv.queues.map((q) => ({ ...q })));
    const bufs = postRx(b.drv, 8);
    const used = b.drv.takeUsed(VIRTIO_NET_RX);
    expect(used.length).toBe(5);
    used.forEach((u, i) => {
      expect(u.len).toBe(VIRTIO_NET_HDR_BYTES + 300 + i);
      expect(Array.from(b.drv.get(bufs.get(u.id)! + VIRTIO_NET_HDR_BYTES, 300 + i))).toEqual(Array.from(frame(MAC, 300 + i, i)));
    });
  });
});
