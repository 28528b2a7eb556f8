/**
 * The user-mode NAT (node/net-user.ts, node/net-tcp.ts, node/net-proto.ts) played from the guest's side
 * with hand-built frames: ARP, DHCP (offer, ack, nak), DNS, ICMP echo, UDP forwarding to a loopback
 * service and refusal elsewhere, TCP through to a loopback echo server (handshake, a transfer larger than
 * the windows, out-of-order segments, retransmission of a lost segment, both FINs), refusals with RST,
 * hostfwd connections into the guest, option parsing, and garbage that must not break it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { createSocket } from 'node:dgram';
import { parseNicOption } from '../../node/nics';
import { UsageError } from '../../node/options';
import {
  UserNet,
  parseAllowRule,
  parseHostFwd,
  GATEWAY_IP,
  GATEWAY_MAC,
  DNS_IP,
  GUEST_IP,
} from '../../node/net-user';
import {
  IPPROTO_ICMP,
  IPPROTO_UDP,
  TCP_ACK,
  TCP_FIN,
  TCP_RST,
  TCP_SYN,
  buildIcmpFrame,
  buildTcpFrame,
  buildUdpFrame,
  foldChecksum,
  ipFromString,
  parseIpv4,
  parseTcp,
  rd16,
  rd32,
  seqAdd,
  seqDiff,
  sum16,
  transportChecksumOk,
  type TcpSegment,
} from '../../node/net-proto';
import type { TcpTimers } from '../../node/net-tcp';

const GMAC = Uint8Array.of(0x52, 0x54, 0x00, 0x12, 0x34, 0x56);
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

const until = async (cond: () => boolean, ms = 5000): Promise<void> => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 2));
  }
};

/** a guest NIC on the NAT: frames out, frames in */
function guest(options: ConstructorParameters<typeof UserNet>[0] = {}): { nat: UserNet; send(f: Uint8Array): void; got: Uint8Array[] } {
  const nat = new UserNet(options);
  cleanups.push(() => nat.close());
  const got: Uint8Array[] = [];
  nat.port.onFrame((f) => got.push(f));
  return { nat, send: (f) => nat.port.send(f), got };
}

/** manual timers for the TCP state machine */
class ManualTimers implements TcpTimers {
  pending: { fn: () => void; ms: number }[] = [];
  set(fn: () => void, ms: number): unknown {
    const t = { fn, ms };
    this.pending.push(t);
    return t;
  }
  clear(h: unknown): void {
    this.pending = this.pending.filter((t) => t !== h);
  }
  fireAll(): void {
    const p = this.pending.splice(0);
    for (const t of p) t.fn();
  }
}

function tcpOf(f: Uint8Array): { ip: ReturnType<typeof parseIpv4>; seg: TcpSegment } | null {
  const ip = parseIpv4(f, 14);
  if (!ip || ip.proto !== 6) return null;
  expect(transportChecksumOk(f, ip)).toBe(true);
  return { ip, seg: parseTcp(f, ip)! };
}

/** a minimal guest TCP client over the NAT */
class GuestTcp {
  seq = 1000;
  ack = 0;
  received: number[] = [];
  finSeen = false;
  rst = false;
  private seen = 0;
  constructor(
    private readonly g: ReturnType<typeof guest>,
    readonly dstIp: number,
    readonly dstPort: number,
    readonly srcPort: number,
    readonly window = 8192,
  ) {}
  seg(flags: number, data?: Uint8Array, seq = this.seq): void {
    this.g.send(buildTcpFrame(GATEWAY_MAC, GMAC, { srcIp: GUEST_IP, dstIp: this.dstIp, srcPort: this.srcPort, dstPort: this.dstPort, seq, ack: this.ack, flags, window: this.window, data }, 1));
  }
  /** segments for this connection that arrived since the last call */
  take(): TcpSegment[] {
    const out: TcpSegment[] = [];
    for (; this.seen < this.g.got.length; this.seen++) {
      const t = tcpOf(this.g.got[this.seen]);
      if (t && t.seg.dstPort === this.srcPort && t.seg.srcPort === this.dstPort) out.push(t.seg);
    }
    return out;
  }
  /** takes in-order data, acknowledges it (unless told to drop), notes FIN and RST */
  absorb(segs: TcpSegment[], drop?: (s: TcpSegment) => boolean): void {
    for (const s of segs) {
      if (s.flags & TCP_RST) this.rst = true;
      if (drop?.(s)) continue;
      if (s.seq === this.ack && s.data.length) {
        this.received.push(...s.data);
        this.ack = seqAdd(this.ack, s.data.length);
      }
      if (s.flags & TCP_FIN && seqAdd(s.seq, s.data.length) === this.ack) {
        this.ack = seqAdd(this.ack, 1);
        this.finSeen = true;
      }
    }
  }
}

function echoServer(): Promise<{ server: Server; port: number }> {
  return new Promise((res) => {
    const server = createServer({ allowHalfOpen: true }, (s) => {
      s.on('data', (d) => s.write(d));
      s.on('end', () => s.end());
    });
    server.listen(0, '127.0.0.1', () => res({ server, port: (server.address() as { port: number }).port }));
    cleanups.push(() => server.close());
  });
}

describe('user-mode NAT: ARP, DHCP, DNS, ICMP', () => {
  it('answers ARP for the gateway and DNS addresses only', async () => {
    const g = guest();
    const arp = (target: string): Uint8Array => {
      const f = new Uint8Array(42);
      f.fill(0xff, 0, 6);
      f.set(GMAC, 6);
      f.set([0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1], 12);
      f.set(GMAC, 22);
      f.set([10, 0, 2, 15], 28);
      f.set(target.split('.').map(Number), 38);
      return f;
    };
    g.send(arp('10.0.2.2'));
    g.send(arp('10.0.2.3'));
    g.send(arp('10.0.2.77'));
    await until(() => g.got.length >= 2);
    await new Promise((r) => setTimeout(r, 20));
    expect(g.got.length).toBe(2);
    for (const [i, ip] of [GATEWAY_IP, DNS_IP].entries()) {
      const r = g.got[i];
      expect(Array.from(r.subarray(0, 6))).toEqual(Array.from(GMAC));
      expect(rd16(r, 20)).toBe(2);
      expect(Array.from(r.subarray(22, 28))).toEqual(Array.from(GATEWAY_MAC));
      expect(rd32(r, 28)).toBe(ip);
    }
    expect(g.nat.guestMac && Array.from(g.nat.guestMac)).toEqual(Array.from(GMAC));
  });

  it('leases 10.0.2.15 by DHCP: DISCOVER → OFFER, REQUEST → ACK, a request for another address → NAK', async () => {
    const g = guest();
    const dhcp = (type: number, requested?: number[]): Uint8Array => {
      const p = new Uint8Array(300);
      p.set([1, 1, 6, 0, 0xde, 0xad, 0xbe, 0xef], 0);
      p.set(GMAC, 28);
      p.set([99, 130, 83, 99], 236);
      let o = 240;
      p.set([53, 1, type], o);
      o += 3;
      if (requested) {
        p.set([50, 4, ...requested], o);
        o += 6;
      }
      p[o] = 255;
      return buildUdpFrame(Uint8Array.of(255, 255, 255, 255, 255, 255), GMAC, 0, 0xffffffff, 68, 67, p, 1);
    };
    const opts = (f: Uint8Array): Map<number, number[]> => {
      const ip = parseIpv4(f, 14)!;
      expect(ip.proto).toBe(IPPROTO_UDP);
      expect(rd16(f, ip.data + 2)).toBe(68);
      const p = f.subarray(ip.data + 8);
      expect(rd32(p, 4)).toBe(0xdeadbeef);
      const m = new Map<number, number[]>();
      m.set(-1, [rd32(p, 16)]);
      for (let o = 240; p[o] !== 255; o += 2 + p[o + 1]) m.set(p[o], Array.from(p.subarray(o + 2, o + 2 + p[o + 1])));
      return m;
    };
    g.send(dhcp(1));
    await until(() => g.got.length === 1);
    const offer = opts(g.got[0]);
    expect(offer.get(53)).toEqual([2]);
    expect(offer.get(-1)).toEqual([GUEST_IP]);
    expect(offer.get(1)).toEqual([255, 255, 255, 0]);
    expect(offer.get(3)).toEqual([10, 0, 2, 2]);
    expect(offer.get(6)).toEqual([10, 0, 2, 3]);
    expect(offer.get(54)).toEqual([10, 0, 2, 2]);
    expect(offer.get(51)).toEqual([0, 1, 0x51, 0x80]);
    g.send(dhcp(3, [10, 0, 2, 15]));
    await until(() => g.got.length === 2);
    expect(opts(g.got[1]).get(53)).toEqual([5]);
    g.send(dhcp(3, [10, 0, 2, 99]));
    await until(() => g.got.length === 3);
    expect(opts(g.got[2]).get(53)).toEqual([6]);
  });

  it('answers DNS for host, gateway, dns and configured names; NXDOMAIN for the rest', async () => {
    const g = guest({ names: { 'files.lan': ipFromString('192.168.7.7') } });
    const query = (name: string, id: number, type = 1): Uint8Array => {
      const labels = name.split('.').flatMap((l) => [l.length, ...Array.from(l, (c) => c.charCodeAt(0))]);
      const q = Uint8Array.from([id >> 8, id & 0xff, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, ...labels, 0, 0, type, 0, 1]);
      return buildUdpFrame(GATEWAY_MAC, GMAC, GUEST_IP, DNS_IP, 5353, 53, q, 1);
    };
    const names = ['host', 'Gateway.x86vm.internal', 'files.lan', 'example.com', 'dns'];
    names.forEach((n, i) => g.send(query(n, i + 1)));
    g.send(query('host', 99, 28)); // AAAA: no data
    await until(() => g.got.length === 6);
    const answers = new Map<number, { rcode: number; an: number; ip?: number }>();
    for (const f of g.got) {
      const ip = parseIpv4(f, 14)!;
      expect(rd32(f, 14 + 12)).toBe(DNS_IP);
      const p = f.subarray(ip.data + 8);
      const an = rd16(p, 6);
      answers.set(rd16(p, 0), { rcode: p[3] & 15, an, ip: an ? rd32(p, p.length - 4) : undefined });
    }
    expect(answers.get(1)).toEqual({ rcode: 0, an: 1, ip: GATEWAY_IP });
    expect(answers.get(2)).toEqual({ rcode: 0, an: 1, ip: GATEWAY_IP });
    expect(answers.get(3)).toEqual({ rcode: 0, an: 1, ip: ipFromString('192.168.7.7') });
    expect(answers.get(4)).toEqual({ rcode: 3, an: 0, ip: undefined });
    expect(answers.get(5)).toEqual({ rcode: 0, an: 1, ip: DNS_IP });
    expect(answers.get(99)).toEqual({ rcode: 0, an: 0, ip: undefined });
  });

  it('answers ICMP echo at the gateway with the same identifier, sequence and payload', async () => {
    const g = guest();
    const payload = Uint8Array.from({ length: 56 }, (_, i) => i);
    g.send(buildIcmpFrame(GATEWAY_MAC, GMAC, GUEST_IP, GATEWAY_IP, 8, 0, 0x12340007, payload, 5));
    g.send(buildIcmpFrame(GATEWAY_MAC, GMAC, GUEST_IP, ipFromString('8.8.8.8'), 8, 0, 0x12340008, payload, 6));
    await until(() => g.got.length === 1);
    const f = g.got[0];
    const ip = parseIpv4(f, 14)!;
    expect(ip.proto).toBe(IPPROTO_ICMP);
    expect([ip.src, ip.dst]).toEqual([GATEWAY_IP, GUEST_IP]);
    expect(f[ip.data]).toBe(0);
    expect(rd32(f, ip.data + 4)).toBe(0x12340007);
    expect(foldChecksum(sum16(f, ip.data, ip.dataLen))).toBe(0);
    expect(Array.from(f.subarray(ip.data + 8))).toEqual(Array.from(payload));
    await new Promise((r) => setTimeout(r, 20));
    expect(g.got.length).toBe(1); // no way out to 8.8.8.8
  });

  it('survives garbage: truncated headers, bad checksums, fragments, unknown protocols', async () => {
    const g = guest();
    const good = buildIcmpFrame(GATEWAY_MAC, GMAC, GUEST_IP, GATEWAY_IP, 8, 0, 1, new Uint8Array(8), 1);
    const badSum = good.slice();
    badSum[24] ^= 0xff;
    const frag = good.slice();
    frag[20] = 0x20; // MF
    const trunc = good.slice(0, 30);
    const rnd = Uint8Array.from({ length: 200 }, () => Math.floor(Math.random() * 256));
    rnd.set(GATEWAY_MAC, 0);
    rnd[12] = 0x08;
    rnd[13] = 0x00;
    for (const f of [badSum, frag, trunc, rnd, new Uint8Array(3), good]) g.send(f);
    await until(() => g.got.length === 1);
    expect(g.nat.stats.framesIn).toBe(6);
  });
});

describe('user-mode NAT: UDP and TCP', () => {
  it('forwards UDP to an allowed loopback port and back; refuses others with ICMP administratively prohibited', async () => {
    const echo = createSocket('udp4');
    cleanups.push(() => echo.close());
    echo.on('message', (m, r) => echo.send(Buffer.concat([Buffer.from('echo:'), m]), r.port, r.address));
    await new Promise<void>((r) => echo.bind(0, '127.0.0.1', () => r()));
    const port = echo.address().port;
    const g = guest({ allow: [parseAllowRule(`udp:${port}`)] });
    g.send(buildUdpFrame(GATEWAY_MAC, GMAC, GUEST_IP, GATEWAY_IP, 4444, port, new TextEncoder().encode('hello'), 1));
    await until(() => g.got.length === 1);
    const f = g.got[0];
    const ip = parseIpv4(f, 14)!;
    expect([ip.src, ip.dst, rd16(f, ip.data), rd16(f, ip.data + 2)]).toEqual([GATEWAY_IP, GUEST_IP, port, 4444]);
    expect(transportChecksumOk(f, ip)).toBe(true);
    expect(new TextDecoder().decode(f.subarray(ip.data + 8))).toBe('echo:hello');
    g.send(buildUdpFrame(GATEWAY_MAC, GMAC, GUEST_IP, GATEWAY_IP, 4444, port + 1, new Uint8Array(4), 2));
    await until(() => g.got.length === 2);
    const u = g.got[1];
    const uip = parseIpv4(u, 14)!;
    expect(uip.proto).toBe(IPPROTO_ICMP);
    expect([u[uip.data], u[uip.data + 1]]).toEqual([3, 13]);
    expect(g.nat.stats.udpRefused).toBe(1);
  });

  it('relays a TCP connection to a loopback echo server: handshake, 200 KB each way through small windows, out-of-order and lost segments, both FINs', async () => {
    const { port } = await echoServer();
    const timers = new ManualTimers();
    const g = guest({ allow: [parseAllowRule(`tcp:127.0.0.1:${port}`)], timers });
    const c = new GuestTcp(g, GATEWAY_IP, port, 33000, 4000);
    c.seq = 1000;
    c.seg(TCP_SYN);
    // the SYN-ACK comes once the host socket has connected
    let synack: TcpSegment | undefined;
    await until(() => {
      const s = c.take();
      synack = synack ?? s.find((x) => (x.flags & (TCP_SYN | TCP_ACK)) === (TCP_SYN | TCP_ACK));
      return !!synack;
    });
    expect(synack!.ack).toBe(1001);
    expect(synack!.mss).toBe(1460);
    const start = 1001;
    c.ack = seqAdd(synack!.seq, 1);
    c.seg(TCP_ACK, undefined, start);
    // 200 KB from the guest in 1000-byte segments, 16 KB in flight; the echo comes back through our
    // 4000-byte window
    const total = 200_000;
    const data = Uint8Array.from({ length: total }, (_, i) => (i * 31 + (i >> 9)) & 0xff);
    let next = 0;
    let acked = 0;
    let idle = 0;
    let droppedOnce = false;
    let outOfOrderSent = false;
    while (c.received.length < total || acked < total) {
      if (!outOfOrderSent && acked >= 10_000) {
        // a segment from beyond what the NAT expects: dropped, answered with an ACK for what it has
        c.seg(TCP_ACK, data.subarray(acked + 3000, acked + 4000), seqAdd(start, acked + 3000));
        outOfOrderSent = true;
      }
      while (next < total && next - acked < 16_000) {
        const n = Math.min(1000, total - next);
        c.seg(TCP_ACK, data.subarray(next, next + n), seqAdd(start, next));
        next += n;
      }
      await new Promise((r) => setTimeout(r, 1));
      const segs = c.take();
      for (const x of segs) if (x.flags & TCP_ACK && seqDiff(x.ack, start) > acked) acked = seqDiff(x.ack, start);
      // lose the first data segment the NAT sends: it must come again when its timer fires
      c.absorb(segs, (x) => {
        if (!droppedOnce && x.data.length > 0) {
          droppedOnce = true;
          return true;
        }
        return false;
      });
      c.seg(TCP_ACK, undefined, seqAdd(start, next));
      if (segs.length) idle = 0;
      else if (++idle > 10) {
        next = acked; // go back to what the NAT has acknowledged
        timers.fireAll();
        idle = 0;
      }
    }
    expect(droppedOnce).toBe(true);
    c.seq = seqAdd(start, total);
    expect(c.received.length).toBe(total);
    expect(Buffer.from(c.received).equals(Buffer.from(data))).toBe(true);
    // FIN from the guest: the echo server ends too, its FIN reaches us, we acknowledge it
    c.seg(TCP_FIN | TCP_ACK);
    c.seq = seqAdd(c.seq, 1);
    await until(() => {
      c.absorb(c.take());
      return c.finSeen;
    });
    c.seg(TCP_ACK);
    await until(() => timers.pending.length > 0);
    timers.fireAll(); // the TIME_WAIT linger
    await until(() => g.nat.tcpConnections === 0);
  });

  it('refuses TCP to ports nobody allowed, and to allowed ports where nothing listens, with RST', async () => {
    const { server, port } = await echoServer();
    server.close();
    await new Promise((r) => setTimeout(r, 10));
    const g = guest({ allow: [parseAllowRule(`${port}`)] });
    for (const [dport, src] of [[port + 1, 33001], [port, 33002]]) {
      const c = new GuestTcp(g, GATEWAY_IP, dport, src);
      c.seg(TCP_SYN);
      let rst: TcpSegment | undefined;
      await until(() => !!(rst = c.take().find((s) => s.flags & TCP_RST)));
      expect(rst!.flags & TCP_ACK).toBe(TCP_ACK);
      expect(rst!.ack).toBe(1001);
    }
    expect(g.nat.stats.tcpRefused).toBe(1);
    expect(g.nat.tcpConnections).toBe(0);
    // a stray segment of no connection gets a reset too
    const stray = new GuestTcp(g, GATEWAY_IP, 80, 33003);
    stray.seg(TCP_ACK, new Uint8Array(10), 5000);
    await until(() => stray.take().some((s) => s.flags & TCP_RST));
  });

  it('forwards a host connection into the guest (hostfwd): SYN to the guest, data both ways, close', async () => {
    const hostPort = 47000 + Math.floor(Math.random() * 2000);
    const g = guest({ hostfwd: [parseHostFwd(`tcp::${hostPort}-:8080`)] });
    await g.nat.ready;
    // the guest must be known (it has sent something) for the NAT to address it
    g.send(buildIcmpFrame(GATEWAY_MAC, GMAC, GUEST_IP, GATEWAY_IP, 8, 0, 1, new Uint8Array(4), 1));
    await until(() => g.got.length === 1);
    const sock: Socket = connect(hostPort, '127.0.0.1');
    cleanups.push(() => sock.destroy());
    let fromGuest = '';
    sock.on('data', (d) => (fromGuest += d.toString()));
    let syn: { ip: NonNullable<ReturnType<typeof parseIpv4>>; seg: TcpSegment } | undefined;
    await until(() => {
      for (const f of g.got) {
        const t = tcpOf(f);
        if (t && t.seg.flags & TCP_SYN) syn = { ip: t.ip!, seg: t.seg };
      }
      return !!syn;
    });
    expect(syn!.seg.dstPort).toBe(8080);
    expect(syn!.ip.src).toBe(GATEWAY_IP);
    const c = new GuestTcp(g, GATEWAY_IP, syn!.seg.srcPort, 8080);
    c.take();
    c.ack = seqAdd(syn!.seg.seq, 1);
    c.seg(TCP_SYN | TCP_ACK, undefined, 5000);
    c.seq = 5001;
    sock.write('from the host');
    await until(() => {
      c.absorb(c.take());
      return c.received.length === 13;
    });
    expect(Buffer.from(c.received).toString()).toBe('from the host');
    c.seg(TCP_ACK | 0x08, new TextEncoder().encode('from the guest'));
    c.seq += 14;
    await until(() => fromGuest === 'from the guest');
    c.seg(TCP_FIN | TCP_ACK);
    await new Promise<void>((r) => sock.once('end', () => r()));
  });
});

describe('--nic option parsing', () => {
  it('parses models, MACs, backends and NAT rules, and names the problem in one line', () => {
    const a = parseNicOption('model=ne2k,switch=unix:/tmp/sw.sock,mac=52:54:00:aa:bb:cc');
    expect(a.model).toBe('ne2k');
    expect(a.backend).toEqual({ kind: 'switch', address: { kind: 'unix', path: '/tmp/sw.sock' }, text: 'unix:/tmp/sw.sock' });
    expect(Array.from(a.mac!)).toEqual([0x52, 0x54, 0, 0xaa, 0xbb, 0xcc]);
    const b = parseNicOption('model=virtio,user,allow=8080,allow=udp:10.1.2.3:53-54,hostfwd=tcp::2222-:22,dns=files:10.1.2.3,link=down,pcap=/tmp/x.pcap');
    expect(b.model).toBe('virtio');
    expect(b.link).toBe(false);
    expect(b.pcap).toBe('/tmp/x.pcap');
    if (b.backend.kind !== 'user') throw new Error('user backend expected');
    expect(b.backend.options.allow!.map((r) => [r.proto, r.ip, r.portLo, r.portHi])).toEqual([
      ['both', GATEWAY_IP, 8080, 8080],
      ['udp', ipFromString('10.1.2.3'), 53, 54],
    ]);
    expect(b.backend.options.hostfwd![0]).toMatchObject({ hostAddr: '127.0.0.1', hostPort: 2222, guestPort: 22 });
    expect(parseAllowRule('127.0.0.1:80').ip).toBe(GATEWAY_IP);
    for (const [text, why] of [
      ['switch=unix:/x', /model=ne2k or model=virtio is needed/],
      ['model=e1000', /model=e1000 is not ne2k or virtio/],
      ['model=ne2k,mac=zz', /not a MAC address/],
      ['model=ne2k,mac=01:00:00:00:00:01', /multicast/],
      ['model=ne2k,switch=tcp:10.0.0.1:5', /only loopback/],
      ['model=ne2k,user,switch=unix:/x', /exclude each other/],
      ['model=ne2k,allow=80', /belong to user/],
      ['model=ne2k,user,allow=99999', /ports must be/],
      ['model=ne2k,user,hostfwd=tcp:0.0.0.0:22-:22', /only loopback/],
      ['model=ne2k,model=virtio', /given twice/],
      ['model=ne2k,colour=red', /unknown key 'colour'/],
    ] as const) {
      expect(() => parseNicOption(text)).toThrow(UsageError);
      expect(() => parseNicOption(text)).toThrow(why);
    }
  });
});

describe('vm.json "nics" entries', () => {
  it('takes the --nic text or an object, resolves paths against the file, and names the field in errors', async () => {
    const { parseNicConfig } = await import('../../node/nics');
    const r = (p: string): string => `/vm/${p}`;
    const a = parseNicConfig({ model: 'virtio', mac: '52:54:00:00:00:09', switch: 'unix:sw.sock', pcap: 'cap.pcap' }, 'vm.json: nics[0]', r);
    expect(a.backend).toMatchObject({ kind: 'switch', address: { kind: 'unix', path: '/vm/sw.sock' } });
    expect(a.pcap).toBe('/vm/cap.pcap');
    const b = parseNicConfig({ model: 'ne2k', user: { allow: ['8080'], hostfwd: ['tcp::2222-:22'] } }, 'vm.json: nics[1]', r);
    expect(b.backend.kind).toBe('user');
    expect(parseNicConfig('model=ne2k,user', 'vm.json: nics[2]').model).toBe('ne2k');
    expect(() => parseNicConfig({ model: 'ne2k', colour: 1 }, 'vm.json: nics[0]')).toThrow(/^vm\.json: nics\[0\]: unknown field 'colour'/);
    expect(() => parseNicConfig({ model: 'e1000' }, 'vm.json: nics[0]')).toThrow(/^vm\.json: nics\[0\]: model=e1000 is not ne2k or virtio/);
    expect(() => parseNicConfig(7, 'vm.json: nics[3]')).toThrow(/^vm\.json: nics\[3\]: expected/);
  });
});
