/**
 * libpcap capture files (the classic format Wireshark, tshark and tcpdump read), produced as bytes: the
 * host writes them where it likes (node/ appends them to a file). Little-endian, magic 0xA1B2C3D4
 * (microsecond timestamps), version 2.4, LINKTYPE_ETHERNET (1).
 *
 *   file header (24 bytes): magic, version major 2, minor 4, thiszone 0, sigfigs 0, snaplen, linktype
 *   record header (16 bytes): ts_sec, ts_usec, incl_len, orig_len; then incl_len bytes of the frame
 */

export const PCAP_MAGIC = 0xa1b2c3d4;
export const LINKTYPE_ETHERNET = 1;
export const PCAP_HEADER_BYTES = 24;
export const PCAP_RECORD_HEADER_BYTES = 16;

/** the 24-byte file header */
export function pcapFileHeader(snaplen = 65535, linktype = LINKTYPE_ETHERNET): Uint8Array {
  const b = new Uint8Array(PCAP_HEADER_BYTES);
  const v = new DataView(b.buffer);
  v.setUint32(0, PCAP_MAGIC, true);
  v.setUint16(4, 2, true);
  v.setUint16(6, 4, true);
  v.setInt32(8, 0, true);
  v.setUint32(12, 0, true);
  v.setUint32(16, snaplen, true);
  v.setUint32(20, linktype, true);
  return b;
}

/**
 * Collects records in one growing buffer: add() frames as they pass, take() the bytes to write
 * (only whole records, so a file cut at any take() boundary is a valid capture).
 */
export class PcapWriter {
  private buf: Uint8Array;
  private view: DataView;
  private len = 0;
  readonly snaplen: number;
  /** records added so far */
  count = 0;

  constructor(options: { snaplen?: number; header?: boolean } = {}) {
    this.snaplen = options.snaplen ?? 65535;
    this.buf = new Uint8Array(4096);
    this.view = new DataView(this.buf.buffer);
    if (options.header !== false) this.append(pcapFileHeader(this.snaplen));
  }

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const bigger = new Uint8Array(size);
    bigger.set(this.buf.subarray(0, this.len));
    this.buf = bigger;
    this.view = new DataView(bigger.buffer);
  }

  private append(bytes: Uint8Array): void {
    this.reserve(bytes.length);
    this.buf.set(bytes, this.len);
    this.len += bytes.length;
  }

  /** one frame seen at `timeMs` milliseconds since the Unix epoch */
  add(frame: Uint8Array, timeMs: number): void {
    const incl = Math.min(frame.length, this.snaplen);
    this.reserve(PCAP_RECORD_HEADER_BYTES + incl);
    const us = Math.max(0, Math.round(timeMs * 1000));
    const sec = Math.floor(us / 1e6);
    const v = this.view;
    v.setUint32(this.len, sec >>> 0, true);
    v.setUint32(this.len + 4, us - sec * 1e6, true);
    v.setUint32(this.len + 8, incl, true);
    v.setUint32(this.len + 12, frame.length, true);
    this.len += PCAP_RECORD_HEADER_BYTES;
    this.buf.set(incl === frame.length ? frame : frame.subarray(0, incl), this.len);
    this.len += incl;
    this.count++;
  }

  /** bytes not yet taken */
  get pending(): number {
    return this.len;
  }

  /** the bytes added since the last take() (a copy), and forgets them */
  take(): Uint8Array {
    const out = this.buf.slice(0, this.len);
    this.len = 0;
    return out;
  }
}

export interface PcapRecord {
  timeUs: number;
  origLen: number;
  data: Uint8Array;
}

/** parses a capture written by PcapWriter (little-endian, microseconds); throws on a malformed file */
export function readPcap(bytes: Uint8Array): { snaplen: number; linktype: number; records: PcapRecord[] } {
  if (bytes.length < PCAP_HEADER_BYTES) throw new Error('pcap: shorter than its header');
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (v.getUint32(0, true) !== PCAP_MAGIC) throw new Error('pcap: bad magic');
  const snaplen = v.getUint32(16, true);
  const linktype = v.getUint32(20, true);
  const records: PcapRecord[] = [];
  let o = PCAP_HEADER_BYTES;
  while (o < bytes.length) {
    if (o + PCAP_RECORD_HEADER_BYTES > bytes.length) throw new Error('pcap: truncated record header');
    const incl = v.getUint32(o + 8, true);
    const orig = v.getUint32(o + 12, true);
    if (o + PCAP_RECORD_HEADER_BYTES + incl > bytes.length) throw new Error('pcap: truncated record');
    records.push({
      timeUs: v.getUint32(o, true) * 1e6 + v.getUint32(o + 4, true),
      origLen: orig,
      data: bytes.slice(o + PCAP_RECORD_HEADER_BYTES, o + PCAP_RECORD_HEADER_BYTES + incl),
    });
    o += PCAP_RECORD_HEADER_BYTES + incl;
  }
  return { snaplen, linktype, records };
}
