/**
 * Byte-level helpers for the user-mode NAT (node/net-user.ts): IPv4 addresses, the Internet checksum,
 * and parsers / builders for Ethernet, ARP, IPv4, ICMP, UDP and TCP headers. Pure functions over
 * Uint8Array (no Node APIs), so the unit tests drive them directly.
 */

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;

/** "10.0.2.15" → 0x0a00020f; NaN when not a dotted quad */
export function ipFromString(text: string): number {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m) return NaN;
  const p = m.slice(1).map(Number);
  if (p.some((x) => x > 255)) return NaN;
  return ((p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]) >>> 0;
}

export function ipToString(ip: number): string {
  return `${ip >>> 24}.${(ip >>> 16) & 0xff}.${(ip >>> 8) & 0xff}.${ip & 0xff}`;
}

export function rd16(b: Uint8Array, o: number): number {
  return (b[o] << 8) | b[o + 1];
}

export function rd32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

export function wr16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 8) & 0xff;
  b[o + 1] = v & 0xff;
}

export function wr32(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 24) & 0xff;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}

/** one's-complement sum of 16-bit words (not yet folded or complemented), from `initial` */
export function sum16(b: Uint8Array, off: number, len: number, initial = 0): number {
  let s = initial;
  let i = off;
  const end = off + len;
  for (; i + 1 < end; i += 2) s += (b[i] << 8) | b[i + 1];
  if (i < end) s += b[i] << 8;
  return s;
}

export function foldChecksum(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return ~s & 0xffff;
}

/** the pseudo-header sum of TCP and UDP */
export function pseudoSum(src: number, dst: number, proto: number, len: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + proto + len;
}

export interface EthFrame {
  dst: Uint8Array;
  src: Uint8Array;
  type: number;
  /** offset of the payload in the frame */
  payload: number;
}

export function parseEth(f: Uint8Array): EthFrame | null {
  if (f.length < 14) return null;
  return { dst: f.subarray(0, 6), src: f.subarray(6, 12), type: rd16(f, 12), payload: 14 };
}

export interface Ipv4Packet {
  src: number;
  dst: number;
  proto: number;
  ttl: number;
  /** offset of the transport header in the frame, and its length (total length - header) */
  data: number;
  dataLen: number;
  fragmented: boolean;
}

/** parses and checks an IPv4 header at `off` (version, lengths, checksum); null when malformed */
export function parseIpv4(f: Uint8Array, off: number): Ipv4Packet | null {
  if (f.length < off + 20) return null;
  const vihl = f[off];
  if (vihl >> 4 !== 4) return null;
  const ihl = (vihl & 15) * 4;
  if (ihl < 20 || f.length < off + ihl) return null;
  const total = rd16(f, off + 2);
  if (total < ihl || off + total > f.length) return null;
  if (foldChecksum(sum16(f, off, ihl)) !== 0) return null;
  const fragField = rd16(f, off + 6);
  return {
    src: rd32(f, off + 12),
    dst: rd32(f, off + 16),
    proto: f[off + 9],
    ttl: f[off + 8],
    data: off + ihl,
    dataLen: total - ihl,
    fragmented: (fragField & 0x2000) !== 0 || (fragField & 0x1fff) !== 0,
  };
}

/**
 * Builds Ethernet + IPv4 around a transport payload of `len` bytes: returns the frame and the offset
 * where the caller writes the transport header and data (checksums for TCP/UDP are the caller's).
 */
export function buildIpv4Frame(dstMac: Uint8Array, srcMac: Uint8Array, src: number, dst: number, proto: number, len: number, id: number): { frame: Uint8Array; at: number } {
  const frame = new Uint8Array(14 + 20 + len);
  frame.set(dstMac, 0);
  frame.set(srcMac, 6);
  wr16(frame, 12, ETHERTYPE_IPV4);
  const ip = 14;
  frame[ip] = 0x45;
  frame[ip + 1] = 0;
  wr16(frame, ip + 2, 20 + len);
  wr16(frame, ip + 4, id & 0xffff);
  wr16(frame, ip + 6, 0x4000); // DF
  frame[ip + 8] = 64;
  frame[ip + 9] = proto;
  wr32(frame, ip + 12, src);
  wr32(frame, ip + 16, dst);
  wr16(frame, ip + 10, foldChecksum(sum16(frame, ip, 20)));
  return { frame, at: ip + 20 };
}

/** fills in the TCP or UDP checksum of a frame built by buildIpv4Frame */
export function setTransportChecksum(frame: Uint8Array, proto: number): void {
  const ip = 14;
  const at = ip + 20;
  const len = frame.length - at;
  const src = rd32(frame, ip + 12);
  const dst = rd32(frame, ip + 16);
  const csumAt = proto === IPPROTO_TCP ? at + 16 : at + 6;
  frame[csumAt] = 0;
  frame[csumAt + 1] = 0;
  let c = foldChecksum(sum16(frame, at, len, pseudoSum(src, dst, proto, len)));
  if (proto === IPPROTO_UDP && c === 0) c = 0xffff;
  wr16(frame, csumAt, c);
}

/** checks the TCP/UDP checksum of a parsed packet (UDP checksum 0 means none) */
export function transportChecksumOk(f: Uint8Array, ip: Ipv4Packet): boolean {
  if (ip.proto === IPPROTO_UDP && ip.dataLen >= 8 && rd16(f, ip.data + 6) === 0) return true;
  return foldChecksum(sum16(f, ip.data, ip.dataLen, pseudoSum(ip.src, ip.dst, ip.proto, ip.dataLen))) === 0;
}

export interface TcpSegment {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  /** MSS option, or 0 */
  mss: number;
  /** the payload */
  data: Uint8Array;
}

export function parseTcp(f: Uint8Array, ip: Ipv4Packet): TcpSegment | null {
  const o = ip.data;
  if (ip.dataLen < 20) return null;
  const hl = (f[o + 12] >> 4) * 4;
  if (hl < 20 || hl > ip.dataLen) return null;
  let mss = 0;
  for (let p = o + 20; p < o + hl; ) {
    const kind = f[p];
    if (kind === 0) break;
    if (kind === 1) {
      p++;
      continue;
    }
    const len = f[p + 1];
    if (len < 2 || p + len > o + hl) break;
    if (kind === 2 && len === 4) mss = rd16(f, p + 2);
    p += len;
  }
  return {
    srcPort: rd16(f, o),
    dstPort: rd16(f, o + 2),
    seq: rd32(f, o + 4),
    ack: rd32(f, o + 8),
    flags: f[o + 13],
    window: rd16(f, o + 14),
    mss,
    data: f.subarray(o + hl, o + ip.dataLen),
  };
}

export interface TcpOut {
  srcIp: number;
  dstIp: number;
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  /** MSS option to include (SYN segments), or 0 */
  mss?: number;
  data?: Uint8Array;
}

export function buildTcpFrame(dstMac: Uint8Array, srcMac: Uint8Array, s: TcpOut, id: number): Uint8Array {
  const opt = s.mss ? 4 : 0;
  const dataLen = s.data ? s.data.length : 0;
  const { frame, at } = buildIpv4Frame(dstMac, srcMac, s.srcIp, s.dstIp, IPPROTO_TCP, 20 + opt + dataLen, id);
  wr16(frame, at, s.srcPort);
  wr16(frame, at + 2, s.dstPort);
  wr32(frame, at + 4, s.seq >>> 0);
  wr32(frame, at + 8, s.ack >>> 0);
  frame[at + 12] = ((20 + opt) / 4) << 4;
  frame[at + 13] = s.flags;
  wr16(frame, at + 14, s.window);
  if (opt) {
    frame[at + 20] = 2;
    frame[at + 21] = 4;
    wr16(frame, at + 22, s.mss!);
  }
  if (s.data) frame.set(s.data, at + 20 + opt);
  setTransportChecksum(frame, IPPROTO_TCP);
  return frame;
}

export function buildUdpFrame(dstMac: Uint8Array, srcMac: Uint8Array, srcIp: number, dstIp: number, srcPort: number, dstPort: number, data: Uint8Array, id: number): Uint8Array {
  const { frame, at } = buildIpv4Frame(dstMac, srcMac, srcIp, dstIp, IPPROTO_UDP, 8 + data.length, id);
  wr16(frame, at, srcPort);
  wr16(frame, at + 2, dstPort);
  wr16(frame, at + 4, 8 + data.length);
  frame.set(data, at + 8);
  setTransportChecksum(frame, IPPROTO_UDP);
  return frame;
}

/** an ICMP message (type, code, the 4 bytes after the checksum, then `body`) */
export function buildIcmpFrame(dstMac: Uint8Array, srcMac: Uint8Array, srcIp: number, dstIp: number, type: number, code: number, rest: number, body: Uint8Array, id: number): Uint8Array {
  const { frame, at } = buildIpv4Frame(dstMac, srcMac, srcIp, dstIp, IPPROTO_ICMP, 8 + body.length, id);
  frame[at] = type;
  frame[at + 1] = code;
  wr32(frame, at + 4, rest);
  frame.set(body, at + 8);
  wr16(frame, at + 2, foldChecksum(sum16(frame, at, 8 + body.length)));
  return frame;
}

/** seq a < b in 32-bit sequence space */
export function seqLt(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}

export function seqLe(a: number, b: number): boolean {
  return ((a - b) | 0) <= 0;
}

export function seqAdd(a: number, n: number): number {
  return (a + n) >>> 0;
}

export function seqDiff(a: number, b: number): number {
  return (a - b) | 0;
}
