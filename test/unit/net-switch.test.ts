/**
 * The learning switch (core/net.ts), the pcap writer (core/pcap.ts), in-process cables, worker-thread
 * MessagePorts and the socket transport with its framing (node/net-socket.ts): learning, flooding,
 * forwarding, aging, malformed frames of every kind, a capture tshark reads, and `x86vm switch` as a
 * process-level API over a Unix socket and loopback TCP.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MessageChannel } from 'node:worker_threads';
import { NetSwitch, netPair, parseMac, formatMac, type NetPort } from '../../core/net';
import { PcapWriter, readPcap, LINKTYPE_ETHERNET } from '../../core/pcap';
import { messagePortNet } from '../../node/net-worker';
import { connectSocketPort, parseNetAddress, NetAddressError } from '../../node/net-socket';
import { startSwitch } from '../../node/switch-cli';

const work = mkdtempSync(join(tmpdir(), 'x86vm-netsw-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 0));
const until = async (cond: () => boolean, ms = 5000): Promise<void> => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
};

function frame(dst: number, src: number, len = 64, fill = 0): Uint8Array {
  const f = new Uint8Array(len).fill(fill);
  f.set([0x52, 0x54, 0, 0, 0, dst], 0);
  if (dst === 0xff) f.fill(0xff, 0, 6);
  f.set([0x52, 0x54, 0, 0, 0, src], 6);
  f[12] = 0x08;
  return f;
}

/** a host on the switch: its cable end and what it received */
function host(sw: NetSwitch, name: string): { port: NetPort; got: Uint8Array[] } {
  const [a, b] = netPair();
  sw.connect(b, name);
  const got: Uint8Array[] = [];
  a.onFrame((f) => got.push(f));
  return { port: a, got };
}

describe('NetSwitch', () => {
  it('floods unknown and broadcast destinations, learns sources, then forwards unicast to one port', async () => {
    const sw = new NetSwitch();
    const [h1, h2, h3] = [host(sw, 'h1'), host(sw, 'h2'), host(sw, 'h3')];
    h1.port.send(frame(2, 1)); // h2 unknown yet: flooded
    await tick();
    expect([h1.got.length, h2.got.length, h3.got.length]).toEqual([0, 1, 1]);
    h2.port.send(frame(1, 2)); // h1 learned: only h1
    await tick();
    expect([h1.got.length, h2.got.length, h3.got.length]).toEqual([1, 1, 1]);
    h1.port.send(frame(2, 1, 100, 7)); // h2 learned now
    await tick();
    expect([h1.got.length, h2.got.length, h3.got.length]).toEqual([1, 2, 1]);
    expect(h2.got[1][99]).toBe(7);
    h3.port.send(frame(0xff, 3)); // broadcast
    await tick();
    expect([h1.got.length, h2.got.length, h3.got.length]).toEqual([2, 3, 1]);
    const mc = frame(9, 3);
    mc[0] = 0x01; // multicast
    h3.port.send(mc);
    await tick();
    expect([h1.got.length, h2.got.length]).toEqual([3, 4]);
    expect(sw.stats.forwarded).toBe(2);
    expect(sw.lookup(parseMac('52:54:00:00:00:01'))?.name).toBe('h1');
    // a MAC that moves is learned on its new port
    h3.port.send(frame(0xff, 1));
    await tick();
    expect(sw.lookup(parseMac('52:54:00:00:00:01'))?.name).toBe('h3');
  });

  it('ages out MACs and forgets the MACs of a port that goes away', async () => {
    let now = 0;
    const sw = new NetSwitch({ now: () => now, agingMs: 1000 });
    const [h1, h2, h3] = [host(sw, 'h1'), host(sw, 'h2'), host(sw, 'h3')];
    h1.port.send(frame(0xff, 1));
    await tick();
    expect(sw.lookup(parseMac('52:54:00:00:00:01'))).toBeDefined();
    now = 2000;
    expect(sw.lookup(parseMac('52:54:00:00:00:01'))).toBeUndefined();
    h2.port.send(frame(1, 2)); // aged: flooded again
    await tick();
    expect(h3.got.length).toBe(2);
    h2.port.close();
    await tick();
    expect(sw.portCount).toBe(2);
    expect(sw.lookup(parseMac('52:54:00:00:00:02'))).toBeUndefined();
  });

  it('drops runts, oversize frames, non-frames and group source addresses without throwing, and passes the largest tagged frame', async () => {
    const sw = new NetSwitch();
    const h1 = host(sw, 'h1');
    const h2 = host(sw, 'h2');
    const p = sw.connect(netPair()[1], 'direct');
    const junk: unknown[] = [new Uint8Array(0), new Uint8Array(13), new Uint8Array(1519), new Uint8Array(100000), 'frame', 12, null, undefined, {}, [1, 2, 3], new Uint16Array(40)];
    for (const j of junk) sw.input(p, j);
    const groupSrc = frame(0xff, 1);
    groupSrc[6] = 0x01;
    sw.input(p, groupSrc);
    expect(sw.stats.runts).toBe(2);
    expect(sw.stats.oversize).toBe(2);
    expect(sw.stats.garbage).toBe(8);
    expect(p.dropped).toBe(12);
    const big = frame(0xff, 5, 1518);
    sw.input(p, big);
    const small = frame(0xff, 5, 14);
    sw.input(p, small);
    await tick();
    expect(h1.got.map((f) => f.length)).toEqual([1518, 14]);
    expect(h2.got.length).toBe(2);
  });

  it('moves frames between threads through MessagePorts, ignoring messages that are not frames', async () => {
    const sw = new NetSwitch();
    const ch1 = new MessageChannel();
    const ch2 = new MessageChannel();
    sw.connect(messagePortNet(ch1.port1), 'w1');
    sw.connect(messagePortNet(ch2.port1), 'w2');
    const far1 = messagePortNet(ch1.port2);
    const far2 = messagePortNet(ch2.port2);
    const got: Uint8Array[] = [];
    far2.onFrame((f) => got.push(f));
    ch1.port2.postMessage('not a frame');
    ch1.port2.postMessage({ x: 1 });
    far1.send(frame(0xff, 1, 300, 9));
    await until(() => got.length === 1);
    expect(got[0].length).toBe(300);
    expect(got[0][200]).toBe(9);
    expect(sw.stats.frames).toBe(1);
    far1.close();
    far2.close();
    await until(() => sw.portCount === 0);
  });
});

describe('pcap', () => {
  it('writes a libpcap file (header, records with µs timestamps) that reads back and that tshark opens', () => {
    const w = new PcapWriter();
    const f1 = frame(0xff, 1, 60, 1);
    const f2 = frame(2, 1, 1514, 2);
    w.add(f1, 1_700_000_000_123.456);
    w.add(f2, 1_700_000_001_000);
    const bytes = w.take();
    expect(bytes.length).toBe(24 + 16 + 60 + 16 + 1514);
    const parsed = readPcap(bytes);
    expect(parsed.linktype).toBe(LINKTYPE_ETHERNET);
    expect(parsed.records.length).toBe(2);
    expect(parsed.records[0].timeUs).toBe(1_700_000_000_123_456);
    expect(Array.from(parsed.records[1].data)).toEqual(Array.from(f2));
    const file = join(work, 't.pcap');
    writeFileSync(file, bytes);
    const out = execFileSync('tshark', ['-r', file, '-T', 'fields', '-e', 'frame.len', '-e', 'eth.src', '-e', 'eth.dst'], { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
    expect(out.trim().split('\n')).toEqual(['60\t52:54:00:00:00:01\tff:ff:ff:ff:ff:ff', '1514\t52:54:00:00:00:01\t52:54:00:00:00:02']);
  });
});

describe('socket transport and `x86vm switch`', () => {
  it('parses addresses, and refuses non-loopback TCP', () => {
    expect(parseNetAddress('unix:/tmp/s')).toEqual({ kind: 'unix', path: '/tmp/s' });
    expect(parseNetAddress('tcp:127.0.0.1:4000')).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 4000 });
    expect(parseNetAddress('tcp:[::1]:4000')).toEqual({ kind: 'tcp', host: '::1', port: 4000 });
    expect(() => parseNetAddress('tcp:0.0.0.0:4000')).toThrow(/only loopback/);
    expect(() => parseNetAddress('tcp:127.0.0.1:70000')).toThrow(NetAddressError);
    expect(() => parseNetAddress('udp:1')).toThrow(/not an address/);
    expect(formatMac(parseMac('52-54-00-AB-cd-01'))).toBe('52:54:00:ab:cd:01');
    expect(() => parseMac('01:00:5e:00:00:01')).toThrow(/multicast/);
  });

  for (const kind of ['unix', 'tcp'] as const) {
    it(`switches frames between clients over ${kind}, survives bad framing, and captures to pcap`, async () => {
      const listen = kind === 'unix' ? `unix:${join(work, 'sw.sock')}` : 'tcp:127.0.0.1:0';
      const pcap = join(work, `${kind}.pcap`);
      const running = await startSwitch({ listen: kind === 'unix' ? listen : 'tcp:127.0.0.1:45931', pcap });
      const addr = running.server.address;
      try {
        const a = await connectSocketPort(addr);
        const b = await connectSocketPort(addr);
        const gotB: Uint8Array[] = [];
        const gotA: Uint8Array[] = [];
        b.onFrame((f) => gotB.push(f));
        a.onFrame((f) => gotA.push(f));
        await until(() => running.sw.portCount === 2);
        // a bad client: runts and oversize in good framing, then a length no frame has
        const bad = kind === 'unix' ? createConnection((addr as { path: string }).path) : createConnection(45931, '127.0.0.1');
        await new Promise<void>((r) => bad.once('connect', () => r()));
        const rec = (len: number): Buffer => {
          const x = Buffer.alloc(4 + len, 0xff);
          x.writeUInt32BE(len, 0);
          return x;
        };
        bad.write(Buffer.concat([rec(3), rec(0), rec(4000)]));
        await until(() => running.sw.portCount === 3);
        bad.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0]));
        await until(() => running.sw.portCount === 2);
        expect([running.sw.stats.runts, running.sw.stats.oversize]).toEqual([2, 1]);
        // frames split across writes and several in one write still arrive whole
        for (let i = 0; i < 50; i++) a.send(frame(0xff, 1, 60 + i * 29, i));
        await until(() => gotB.length === 50);
        gotB.forEach((f, i) => {
          expect(f.length).toBe(60 + i * 29);
          expect(f[f.length - 1]).toBe(i);
        });
        b.send(frame(1, 2, 1514, 3));
        await until(() => gotA.length === 1);
        expect(running.sw.lookup(parseMac('52:54:00:00:00:02'))).toBeDefined();
        a.close();
        b.close();
      } finally {
        await running.close();
      }
      const cap = readPcap(new Uint8Array(readFileSync(pcap)));
      expect(cap.records.length).toBe(51);
      expect(cap.records[50].origLen).toBe(1514);
    });
  }

  it('fails with a one-line message when no switch listens, and when the address is held by a live switch', async () => {
    await expect(connectSocketPort(`unix:${join(work, 'nobody.sock')}`)).rejects.toThrow(/cannot connect to switch unix:.*no such socket/);
    const sock = join(work, 'twice.sock');
    const first = await startSwitch({ listen: `unix:${sock}` });
    try {
      await expect(startSwitch({ listen: `unix:${sock}` })).rejects.toThrow(/cannot listen on unix:.*in use/);
    } finally {
      await first.close();
    }
    // a stale socket file left by a crashed switch is replaced
    try {
      execFileSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(sock)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    } catch {
      // killed, as intended: its socket file stays behind
    }
    expect(existsSync(sock)).toBe(true);
    const again = await startSwitch({ listen: `unix:${sock}` });
    await again.close();
  });
});
