/**
 * User-mode networking (`--nic model=…,user[,allow=…][,hostfwd=…]`): a small NAT in the Node host that
 * plays the rest of the network for one guest NIC, laid out like QEMU's slirp:
 *
 *   guest 10.0.2.15/24 (leased by DHCP), gateway and host 10.0.2.2, DNS 10.0.2.3, both at MAC
 *   52:55:0a:00:02:02
 *
 * - ARP for 10.0.2.2 and 10.0.2.3 is answered; the guest's MAC and address are learned from its frames.
 * - DHCP (UDP 67): DISCOVER → OFFER, REQUEST → ACK of 10.0.2.15 (mask /24, router 10.0.2.2, DNS 10.0.2.3,
 *   lease 24 h); a REQUEST for another address gets a NAK.
 * - DNS (10.0.2.3:53, UDP): A queries for `host`, `gateway` (→ 10.0.2.2) and `dns` (→ 10.0.2.3), with or
 *   without the domain `x86vm.internal`, and for names given with `dns=NAME:A.B.C.D`; anything else is
 *   NXDOMAIN. Nothing is asked of the host's resolver: names do not leak out.
 * - ICMP echo to 10.0.2.2 and 10.0.2.3 is answered.
 * - TCP and UDP leave only where the user allowed (`allow=` rules), nowhere else by default:
 *     allow=PORT[-PORT]           the guest may reach 10.0.2.2:PORT, which is the host's 127.0.0.1:PORT
 *     allow=A.B.C.D:PORT[-PORT]   the guest may reach A.B.C.D:PORT itself (127.x addresses mean the
 *                                 host's loopback, which the guest reaches as 10.0.2.2)
 *   with an optional `tcp:` or `udp:` in front (default: both). A refused TCP connection gets a RST, a
 *   refused UDP datagram an ICMP "administratively prohibited".
 * - hostfwd=tcp:[ADDR]:HOSTPORT-:GUESTPORT (QEMU's syntax; ADDR loopback, default 127.0.0.1) listens on the
 *   host and forwards each connection to the guest's GUESTPORT, coming from 10.0.2.2.
 *
 * TCP from the guest is terminated here (node/net-tcp.ts) and relayed through a Node socket; UDP flows get
 * one Node datagram socket each, closed after UDP_IDLE_MS without traffic. IP fragments are dropped (the
 * guest's MTU is 1500 and TCP segments fit). Frames reach the guest from a microtask or a socket callback,
 * never from inside its CPU loop.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import type { FrameHandler, NetPort } from '../core/net';
import {
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  IPPROTO_ICMP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  TCP_ACK,
  TCP_RST,
  TCP_SYN,
  buildIcmpFrame,
  buildTcpFrame,
  buildUdpFrame,
  foldChecksum,
  ipFromString,
  ipToString,
  parseEth,
  parseIpv4,
  parseTcp,
  rd16,
  rd32,
  seqAdd,
  sum16,
  transportChecksumOk,
  wr16,
  wr32,
  type Ipv4Packet,
  type TcpSegment,
} from './net-proto';
import { NODE_TIMERS, TcpConn, type TcpEmit, type TcpHostSide, type TcpTimers } from './net-tcp';

export const NET_ADDR = ipFromString('10.0.2.0');
export const NET_MASK = ipFromString('255.255.255.0');
export const GATEWAY_IP = ipFromString('10.0.2.2');
export const DNS_IP = ipFromString('10.0.2.3');
export const GUEST_IP = ipFromString('10.0.2.15');
export const GATEWAY_MAC = Uint8Array.of(0x52, 0x55, 0x0a, 0x00, 0x02, 0x02);
export const DNS_DOMAIN = 'x86vm.internal';
export const LEASE_SECONDS = 86400;
export const UDP_IDLE_MS = 60_000;
const BROADCAST_MAC = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff);

export interface AllowRule {
  proto: 'tcp' | 'udp' | 'both';
  /** the destination address as the guest sees it */
  ip: number;
  portLo: number;
  portHi: number;
  /** the option text, for messages */
  source: string;
}

export interface HostFwd {
  proto: 'tcp';
  hostAddr: string;
  hostPort: number;
  guestPort: number;
  source: string;
}

export interface UserNetOptions {
  allow?: AllowRule[];
  hostfwd?: HostFwd[];
  /** extra DNS names → IPv4 (as the guest sees it) */
  names?: Record<string, number>;
  timers?: TcpTimers;
}

export class UserNetOptionError extends Error {}

/** parses one allow= value (see the file comment) */
export function parseAllowRule(text: string): AllowRule {
  let rest = text;
  let proto: AllowRule['proto'] = 'both';
  const pm = /^(tcp|udp):/.exec(rest);
  if (pm) {
    proto = pm[1] as 'tcp' | 'udp';
    rest = rest.slice(4);
  }
  const m = /^(?:(\d+\.\d+\.\d+\.\d+):)?(\d+)(?:-(\d+))?$/.exec(rest);
  if (!m) throw new UserNetOptionError(`allow=${text}: expected [tcp:|udp:][A.B.C.D:]PORT[-PORT]`);
  let ip = GATEWAY_IP;
  if (m[1] !== undefined) {
    ip = ipFromString(m[1]);
    if (Number.isNaN(ip)) throw new UserNetOptionError(`allow=${text}: '${m[1]}' is not an IPv4 address`);
    if (ip >>> 24 === 127) ip = GATEWAY_IP; // the host's loopback is 10.0.2.2 for the guest
  }
  const lo = Number(m[2]);
  const hi = m[3] !== undefined ? Number(m[3]) : lo;
  if (!(lo >= 1 && hi <= 65535 && lo <= hi)) throw new UserNetOptionError(`allow=${text}: ports must be 1–65535`);
  return { proto, ip, portLo: lo, portHi: hi, source: text };
}

/** parses one hostfwd= value: tcp:[ADDR]:HOSTPORT-:GUESTPORT */
export function parseHostFwd(text: string): HostFwd {
  const m = /^(tcp):(\d+\.\d+\.\d+\.\d+|localhost)?:(\d+)-(?:10\.0\.2\.15)?:(\d+)$/.exec(text);
  if (!m) throw new UserNetOptionError(`hostfwd=${text}: expected tcp:[127.0.0.1]:HOSTPORT-:GUESTPORT`);
  const hostAddr = m[2] ?? '127.0.0.1';
  if (hostAddr !== 'localhost' && !/^127\./.test(hostAddr)) {
    throw new UserNetOptionError(`hostfwd=${text}: only loopback host addresses (127.x.x.x) are allowed`);
  }
  const hostPort = Number(m[3]);
  const guestPort = Number(m[4]);
  if (!(hostPort >= 1 && hostPort <= 65535 && guestPort >= 1 && guestPort <= 65535)) {
    throw new UserNetOptionError(`hostfwd=${text}: ports must be 1–65535`);
  }
  return { proto: 'tcp', hostAddr, hostPort, guestPort, source: text };
}

interface UdpFlow {
  sock: UdpSocket;
  timer: ReturnType<typeof setTimeout> | null;
  guestPort: number;
  ip: number;
  port: number;
}

/** a Node socket as the TCP state machine's host side */
function socketHost(sock: Socket): TcpHostSide {
  return {
    write: (data) => void sock.write(Buffer.from(data)),
    end: () => void sock.end(),
    destroy: () => void sock.destroy(),
    pause: () => void sock.pause(),
    resume: () => void sock.resume(),
    get buffered() {
      return sock.writableLength;
    },
  };
}

export class UserNet {
  /** the cable end the guest NIC plugs into */
  readonly port: NetPort;
  /** resolves when every hostfwd listener is bound; rejects with a one-line message */
  readonly ready: Promise<void>;
  guestMac: Uint8Array | null = null;
  guestIp = GUEST_IP;
  readonly stats = { framesIn: 0, framesOut: 0, dropped: 0, tcpRefused: 0, udpRefused: 0, dhcp: 0, dns: 0 };
  private handler: FrameHandler | null = null;
  private readonly inbox: Uint8Array[] = [];
  private readonly outbox: Uint8Array[] = [];
  private scheduled = false;
  private readonly allow: AllowRule[];
  private readonly names = new Map<string, number>();
  private readonly tcp = new Map<string, TcpConn>();
  private readonly sockets = new Set<Socket>();
  private readonly udp = new Map<string, UdpFlow>();
  private readonly servers: Server[] = [];
  /** frames for the guest waiting for its MAC (ARP) */
  private waitingForMac: (() => void)[] = [];
  private ipId = 1;
  private nextPort = 40000;
  private closed = false;
  private readonly timers: TcpTimers;

  constructor(options: UserNetOptions = {}) {
    this.allow = options.allow ?? [];
    this.timers = options.timers ?? NODE_TIMERS;
    for (const n of ['host', 'gateway']) this.addName(n, GATEWAY_IP);
    this.addName('dns', DNS_IP);
    for (const [n, ip] of Object.entries(options.names ?? {})) this.addName(n, ip);
    const self = this;
    this.port = {
      send(frame: Uint8Array): void {
        if (self.closed) return;
        self.inbox.push(frame);
        self.schedule();
      },
      onFrame(h: FrameHandler): void {
        self.handler = h;
      },
      close(): void {
        self.close();
      },
    };
    this.ready = Promise.all((options.hostfwd ?? []).map((f) => this.listen(f))).then(() => undefined);
  }

  private addName(name: string, ip: number): void {
    const n = name.toLowerCase().replace(/\.$/, '');
    this.names.set(n, ip);
    if (!n.includes('.')) this.names.set(`${n}.${DNS_DOMAIN}`, ip);
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => this.pump());
  }

  private pump(): void {
    this.scheduled = false;
    while (this.inbox.length) {
      const f = this.inbox.shift()!;
      try {
        this.input(f);
      } catch {
        this.stats.dropped++; // a malformed frame must never take the NAT down
      }
    }
    const out = this.outbox.splice(0);
    for (const f of out) {
      this.stats.framesOut++;
      this.handler?.(f);
    }
  }

  /** a frame for the guest (delivered from a microtask) */
  private toGuest(frame: Uint8Array): void {
    if (this.closed) return;
    this.outbox.push(frame);
    this.schedule();
  }

  /** builds and sends a frame to the guest's MAC, asking for it with ARP first when unknown */
  private toGuestMac(build: (mac: Uint8Array) => Uint8Array): void {
    if (this.guestMac) {
      this.toGuest(build(this.guestMac));
      return;
    }
    if (this.waitingForMac.length >= 256) return; // the guest does not answer ARP: drop, as a wire would
    this.waitingForMac.push(() => this.toGuest(build(this.guestMac!)));
    if (this.waitingForMac.length === 1) this.toGuest(this.arpFrame(1, BROADCAST_MAC, GATEWAY_IP, new Uint8Array(6), this.guestIp));
  }

  private learnGuest(mac: Uint8Array): void {
    if (mac[0] & 1) return;
    if (!this.guestMac) this.guestMac = mac.slice();
    else if (!this.guestMac.every((b, i) => b === mac[i])) this.guestMac = mac.slice();
    if (this.waitingForMac.length) {
      const w = this.waitingForMac.splice(0);
      for (const fn of w) fn();
    }
  }

  private id(): number {
    this.ipId = (this.ipId + 1) & 0xffff;
    return this.ipId;
  }

  // ---- input ----

  private input(f: Uint8Array): void {
    this.stats.framesIn++;
    const eth = parseEth(f);
    if (!eth) return;
    const toUs = eth.dst.every((b, i) => b === GATEWAY_MAC[i]);
    const bcast = eth.dst.every((b) => b === 0xff);
    if (!toUs && !bcast) return;
    if (eth.type === ETHERTYPE_ARP) return this.arp(f, eth.payload);
    if (eth.type !== ETHERTYPE_IPV4) return;
    const ip = parseIpv4(f, eth.payload);
    if (!ip || ip.fragmented) {
      this.stats.dropped++;
      return;
    }
    this.learnGuest(eth.src);
    if ((ip.src & NET_MASK) === NET_ADDR && ip.src !== GATEWAY_IP && ip.src !== DNS_IP && (ip.src & 0xff) !== 0xff) this.guestIp = ip.src;
    if (ip.proto === IPPROTO_UDP) return this.udpInput(f, ip, bcast);
    if (bcast) return;
    if (ip.proto === IPPROTO_ICMP) return this.icmp(f, ip);
    if (ip.proto === IPPROTO_TCP) return this.tcpInput(f, ip);
  }

  // ---- ARP ----

  private arpFrame(op: number, dstMac: Uint8Array, senderIp: number, targetMac: Uint8Array, targetIp: number): Uint8Array {
    const r = new Uint8Array(42);
    r.set(dstMac, 0);
    r.set(GATEWAY_MAC, 6);
    wr16(r, 12, ETHERTYPE_ARP);
    wr16(r, 14, 1);
    wr16(r, 16, ETHERTYPE_IPV4);
    r[18] = 6;
    r[19] = 4;
    wr16(r, 20, op);
    r.set(GATEWAY_MAC, 22);
    wr32(r, 28, senderIp);
    r.set(targetMac, 32);
    wr32(r, 38, targetIp);
    return r;
  }

  private arp(f: Uint8Array, o: number): void {
    if (f.length < o + 28 || rd16(f, o) !== 1 || rd16(f, o + 2) !== ETHERTYPE_IPV4 || f[o + 4] !== 6 || f[o + 5] !== 4) return;
    const op = rd16(f, o + 6);
    const senderMac = f.subarray(o + 8, o + 14);
    const senderIp = rd32(f, o + 14);
    const targetIp = rd32(f, o + 24);
    if ((senderIp & NET_MASK) === NET_ADDR && senderIp !== GATEWAY_IP && senderIp !== DNS_IP) {
      this.guestIp = senderIp;
      this.learnGuest(senderMac);
    }
    if (op === 1 && (targetIp === GATEWAY_IP || targetIp === DNS_IP)) {
      const r = this.arpFrame(2, senderMac, targetIp, senderMac, senderIp);
      this.toGuest(r);
    }
  }

  // ---- ICMP ----

  private icmp(f: Uint8Array, ip: Ipv4Packet): void {
    if (ip.dst !== GATEWAY_IP && ip.dst !== DNS_IP) return;
    if (ip.dataLen < 8 || foldChecksum(sum16(f, ip.data, ip.dataLen)) !== 0) return;
    if (f[ip.data] !== 8 || f[ip.data + 1] !== 0) return; // echo requests only
    const rest = rd32(f, ip.data + 4);
    const body = f.slice(ip.data + 8, ip.data + ip.dataLen);
    this.toGuestMac((mac) => buildIcmpFrame(mac, GATEWAY_MAC, ip.dst, ip.src, 0, 0, rest, body, this.id()));
  }

  /** ICMP destination unreachable (code 13: administratively prohibited) about packet `ip` */
  private unreachable(f: Uint8Array, ip: Ipv4Packet, code = 13): void {
    // the offending packet's IP header and its first 8 data bytes (the IP header starts after Ethernet)
    const body = f.slice(14, Math.min(f.length, ip.data + 8));
    this.toGuestMac((mac) => buildIcmpFrame(mac, GATEWAY_MAC, GATEWAY_IP, ip.src, 3, code, 0, body, this.id()));
  }

  // ---- rules ----

  /** where an allowed destination lives on the host, or null when not allowed */
  private hostTarget(proto: 'tcp' | 'udp', ip: number, port: number): string | null {
    for (const r of this.allow) {
      if (r.ip !== ip || port < r.portLo || port > r.portHi) continue;
      if (r.proto !== 'both' && r.proto !== proto) continue;
      return ip === GATEWAY_IP ? '127.0.0.1' : ipToString(ip);
    }
    return null;
  }

  // ---- UDP: DHCP, DNS, forwarding ----

  private udpInput(f: Uint8Array, ip: Ipv4Packet, bcast: boolean): void {
    if (ip.dataLen < 8 || !transportChecksumOk(f, ip)) {
      this.stats.dropped++;
      return;
    }
    const o = ip.data;
    const srcPort = rd16(f, o);
    const dstPort = rd16(f, o + 2);
    const ulen = rd16(f, o + 4);
    if (ulen < 8 || ulen > ip.dataLen) return;
    const payload = f.subarray(o + 8, o + ulen);
    if (dstPort === 67 && (ip.dst === 0xffffffff || ip.dst === GATEWAY_IP)) return this.dhcp(payload);
    if (bcast || ip.dst === 0xffffffff || (ip.dst & 0xff) === 0xff || ip.dst >>> 28 === 14) return;
    if (ip.dst === DNS_IP && dstPort === 53) return this.dns(payload, ip.src, srcPort);
    const target = this.hostTarget('udp', ip.dst, dstPort);
    if (!target) {
      this.stats.udpRefused++;
      this.unreachable(f, ip);
      return;
    }
    this.udpForward(srcPort, ip.dst, dstPort, target, payload.slice());
  }

  private udpForward(guestPort: number, ip: number, port: number, target: string, data: Uint8Array): void {
    const key = `${guestPort}|${ip}|${port}`;
    let flow = this.udp.get(key);
    if (!flow) {
      const sock = createSocket('udp4');
      const fl: UdpFlow = { sock, timer: null, guestPort, ip, port };
      flow = fl;
      this.udp.set(key, fl);
      sock.on('message', (msg, rinfo) => {
        if (rinfo.port !== port) return;
        this.touchUdp(key, fl);
        const payload = new Uint8Array(msg.buffer, msg.byteOffset, msg.length).slice();
        this.toGuestMac((mac) => buildUdpFrame(mac, GATEWAY_MAC, ip, this.guestIp, port, guestPort, payload, this.id()));
      });
      sock.on('error', () => this.dropUdp(key));
      sock.unref();
    }
    this.touchUdp(key, flow);
    flow.sock.send(data, port, target);
  }

  private touchUdp(key: string, flow: UdpFlow): void {
    if (flow.timer) clearTimeout(flow.timer);
    flow.timer = setTimeout(() => this.dropUdp(key), UDP_IDLE_MS);
    flow.timer.unref?.();
  }

  private dropUdp(key: string): void {
    const flow = this.udp.get(key);
    if (!flow) return;
    this.udp.delete(key);
    if (flow.timer) clearTimeout(flow.timer);
    try {
      flow.sock.close();
    } catch {
      // already closed
    }
  }

  private dhcp(p: Uint8Array): void {
    if (p.length < 240 || p[0] !== 1 || p[1] !== 1 || p[2] !== 6) return;
    if (rd32(p, 236) !== 0x63825363) return;
    let type = 0;
    let requested = -1;
    for (let o = 240; o < p.length; ) {
      const code = p[o];
      if (code === 255) break;
      if (code === 0) {
        o++;
        continue;
      }
      if (o + 1 >= p.length) break;
      const len = p[o + 1];
      if (o + 2 + len > p.length) break;
      if (code === 53 && len >= 1) type = p[o + 2];
      if (code === 50 && len === 4) requested = rd32(p, o + 2);
      o += 2 + len;
    }
    const chaddr = p.slice(28, 34);
    const ciaddr = rd32(p, 12);
    let reply: number;
    if (type === 1) reply = 2; // DISCOVER → OFFER
    else if (type === 3) {
      const want = requested >= 0 ? requested : ciaddr;
      reply = want === GUEST_IP || want === 0 ? 5 : 6; // ACK or NAK
    } else return;
    this.stats.dhcp++;
    const r = new Uint8Array(300);
    r[0] = 2;
    r[1] = 1;
    r[2] = 6;
    r.set(p.subarray(4, 8), 4); // xid
    r.set(p.subarray(10, 12), 10); // flags
    if (reply !== 6) wr32(r, 16, GUEST_IP);
    wr32(r, 20, GATEWAY_IP);
    r.set(p.subarray(28, 44), 28); // chaddr
    wr32(r, 236, 0x63825363);
    let o = 240;
    const opt = (code: number, bytes: number[]): void => {
      r[o++] = code;
      r[o++] = bytes.length;
      for (const b of bytes) r[o++] = b;
    };
    const ipBytes = (v: number): number[] => [v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
    opt(53, [reply]);
    opt(54, ipBytes(GATEWAY_IP));
    if (reply !== 6) {
      opt(51, ipBytes(LEASE_SECONDS));
      opt(1, ipBytes(NET_MASK));
      opt(3, ipBytes(GATEWAY_IP));
      opt(6, ipBytes(DNS_IP));
      opt(28, ipBytes(NET_ADDR | 0xff));
      const dom = Array.from(DNS_DOMAIN, (c) => c.charCodeAt(0));
      opt(15, dom);
    }
    r[o++] = 255;
    this.learnGuest(chaddr);
    const frame = buildUdpFrame(chaddr, GATEWAY_MAC, GATEWAY_IP, 0xffffffff, 67, 68, r.subarray(0, Math.max(o, 300)), this.id());
    this.toGuest(frame);
  }

  private dns(q: Uint8Array, srcIp: number, srcPort: number): void {
    if (q.length < 12) return;
    const flags = rd16(q, 2);
    if (flags & 0x8000) return; // a response
    const qd = rd16(q, 4);
    const reply = (rcode: number, answer: Uint8Array | null, qEnd: number): void => {
      const head = q.slice(0, qEnd);
      wr16(head, 2, 0x8000 | (flags & 0x7900) | 0x0080 | rcode); // QR, opcode, RD copied, RA
      wr16(head, 4, qEnd > 12 ? 1 : 0);
      wr16(head, 6, answer ? 1 : 0);
      wr16(head, 8, 0);
      wr16(head, 10, 0);
      const out = new Uint8Array(head.length + (answer ? answer.length : 0));
      out.set(head);
      if (answer) out.set(answer, head.length);
      this.stats.dns++;
      this.toGuestMac((mac) => buildUdpFrame(mac, GATEWAY_MAC, DNS_IP, srcIp, 53, srcPort, out, this.id()));
    };
    if (qd !== 1 || ((flags >> 11) & 15) !== 0) return reply(4, null, 12); // NOTIMP
    const labels: string[] = [];
    let o = 12;
    for (;;) {
      if (o >= q.length) return reply(1, null, 12);
      const len = q[o];
      if (len === 0) {
        o++;
        break;
      }
      if (len & 0xc0 || o + 1 + len > q.length) return reply(1, null, 12); // FORMERR
      labels.push(String.fromCharCode(...q.subarray(o + 1, o + 1 + len)));
      o += 1 + len;
    }
    if (o + 4 > q.length) return reply(1, null, 12);
    const qtype = rd16(q, o);
    const qclass = rd16(q, o + 2);
    const qEnd = o + 4;
    const name = labels.join('.').toLowerCase();
    const ip = this.names.get(name);
    if (ip === undefined) return reply(3, null, qEnd); // NXDOMAIN
    if (qtype !== 1 || qclass !== 1) return reply(0, null, qEnd);
    const a = new Uint8Array(16);
    wr16(a, 0, 0xc00c); // pointer to the question's name
    wr16(a, 2, 1);
    wr16(a, 4, 1);
    wr32(a, 6, 60);
    wr16(a, 10, 4);
    wr32(a, 12, ip);
    reply(0, a, qEnd);
  }

  // ---- TCP ----

  private tcpInput(f: Uint8Array, ip: Ipv4Packet): void {
    if (!transportChecksumOk(f, ip)) {
      this.stats.dropped++;
      return;
    }
    const seg = parseTcp(f, ip);
    if (!seg) return;
    const key = `${seg.srcPort}|${ip.dst}|${seg.dstPort}`;
    const conn = this.tcp.get(key);
    if (conn) {
      conn.input(seg);
      return;
    }
    if ((seg.flags & (TCP_SYN | TCP_ACK | TCP_RST)) === TCP_SYN) {
      const target = this.hostTarget('tcp', ip.dst, seg.dstPort);
      if (target) return this.tcpOpen(key, ip, seg, target);
      this.stats.tcpRefused++;
    }
    if (!(seg.flags & TCP_RST)) this.tcpReset(ip, seg);
  }

  private tcpReset(ip: Ipv4Packet, seg: TcpSegment): void {
    const len = seg.data.length + (seg.flags & TCP_SYN ? 1 : 0) + (seg.flags & 1 ? 1 : 0);
    const out =
      seg.flags & TCP_ACK
        ? { seq: seg.ack, ack: 0, flags: TCP_RST }
        : { seq: 0, ack: seqAdd(seg.seq, len), flags: TCP_RST | TCP_ACK };
    this.toGuestMac((mac) =>
      buildTcpFrame(mac, GATEWAY_MAC, { srcIp: ip.dst, dstIp: ip.src, srcPort: seg.dstPort, dstPort: seg.srcPort, window: 0, ...out }, this.id()),
    );
  }

  private emitter(remoteIp: number, remotePort: number, guestPort: number): (s: TcpEmit) => void {
    return (s) =>
      this.toGuestMac((mac) =>
        buildTcpFrame(mac, GATEWAY_MAC, { srcIp: remoteIp, dstIp: this.guestIp, srcPort: remotePort, dstPort: guestPort, ...s }, this.id()),
      );
  }

  private iss(): number {
    return Math.floor(Math.random() * 0x100000000) >>> 0;
  }

  private tcpOpen(key: string, ip: Ipv4Packet, seg: TcpSegment, target: string): void {
    const conn = new TcpConn(this.emitter(ip.dst, seg.dstPort, seg.srcPort), this.iss(), 'connecting', this.timers);
    conn.guestSyn(seg);
    this.tcp.set(key, conn);
    conn.onDone = () => {
      if (this.tcp.get(key) === conn) this.tcp.delete(key);
    };
    const sock = connect({ host: target, port: seg.dstPort, allowHalfOpen: true });
    this.sockets.add(sock);
    let connected = false;
    sock.once('connect', () => {
      connected = true;
      conn.hostConnected(socketHost(sock));
    });
    this.wireSocket(sock, conn, () => connected);
  }

  private wireSocket(sock: Socket, conn: TcpConn, connected: () => boolean): void {
    sock.setNoDelay(true);
    sock.on('data', (d: Buffer) => conn.hostData(new Uint8Array(d.buffer, d.byteOffset, d.length)));
    sock.on('end', () => conn.hostEnd());
    sock.on('drain', () => conn.hostDrained());
    sock.on('error', () => {
      if (connected()) conn.hostError();
      else conn.refuse();
    });
    sock.on('close', () => this.sockets.delete(sock));
  }

  private async listen(fwd: HostFwd): Promise<void> {
    const server = createServer({ allowHalfOpen: true }, (sock) => {
      if (this.closed) {
        sock.destroy();
        return;
      }
      this.sockets.add(sock);
      const localPort = this.nextPort;
      this.nextPort = this.nextPort >= 60999 ? 40000 : this.nextPort + 1;
      const key = `${fwd.guestPort}|${GATEWAY_IP}|${localPort}`;
      const conn = new TcpConn(this.emitter(GATEWAY_IP, localPort, fwd.guestPort), this.iss(), 'syn-sent', this.timers);
      this.tcp.get(key)?.abort();
      this.tcp.set(key, conn);
      conn.onDone = () => {
        if (this.tcp.get(key) === conn) this.tcp.delete(key);
        sock.destroy();
      };
      this.wireSocket(sock, conn, () => true);
      conn.activeOpen(socketHost(sock));
    });
    this.servers.push(server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) =>
        reject(new UserNetOptionError(`hostfwd=${fwd.source}: cannot listen on ${fwd.hostAddr}:${fwd.hostPort}: ${e.code === 'EADDRINUSE' ? 'the port is in use' : e.message}`)),
      );
      server.listen(fwd.hostPort, fwd.hostAddr, () => resolve());
    });
  }

  /** connections the NAT holds now */
  get tcpConnections(): number {
    return this.tcp.size;
  }

  /** shuts every socket and listener */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const c of this.tcp.values()) c.abort();
    this.tcp.clear();
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    for (const k of [...this.udp.keys()]) this.dropUdp(k);
    for (const s of this.servers) s.close();
    this.inbox.length = 0;
    this.outbox.length = 0;
  }
}
