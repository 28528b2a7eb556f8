/**
 * SCSI targets shared by the controllers that speak SCSI commands: ATAPI on IDE (packet commands are the
 * MMC command set) and virtio-scsi. A target executes command descriptor blocks (CDBs) against a disk/
 * BlockDevice and returns the status, the data for the initiator and the sense data.
 *
 * Written from SPC-3 (INQUIRY, REQUEST SENSE, MODE SENSE, REPORT LUNS, fixed-format sense data), SBC-2
 * (READ/WRITE 6/10/12/16, READ CAPACITY 10/16, SYNCHRONIZE CACHE, VERIFY) and MMC-2/MMC-3 (READ TOC/PMA/
 * ATIP, GET CONFIGURATION, GET EVENT STATUS NOTIFICATION, the capabilities mode page, media change), and
 * checked against what Linux's sd, sr/cdrom and libata send.
 *
 * - ScsiDisk: 512-byte blocks straight onto the BlockDevice's sectors.
 * - ScsiCdrom: 2048-byte blocks (four BlockDevice sectors each), one data track; a medium can be
 *   inserted or removed by the host (insert()) or ejected and loaded by the guest (START STOP UNIT), and
 *   the guest may lock the tray (PREVENT ALLOW MEDIUM REMOVAL). A new medium is reported once as UNIT
 *   ATTENTION 06/28/00 and as a "new media" event through GET EVENT STATUS NOTIFICATION.
 *
 * Sense: every CHECK CONDITION carries its fixed-format sense data in the result (autosense, what
 * virtio-scsi returns) and also keeps it for a following REQUEST SENSE (what ATAPI initiators send). Any
 * other command clears the kept sense. Sense keys/ASC/ASCQ used: 02/3A/00 no medium, 06/28/00 medium
 * changed, 05/20/00 invalid opcode, 05/24/00 invalid field in CDB, 05/21/00 LBA out of range, 05/39/00
 * saving parameters not supported, 05/53/02 medium removal prevented, 07/27/00 write protected, 03/11/00
 * unrecovered read error, 03/0C/00 write error (host I/O failures; also reported once through onWarning).
 *
 * Commands from several initiators' queues may overlap (virtio-scsi); each command's checks run when it
 * starts and its data moves with one BlockDevice call, so nothing here depends on the order of completion.
 */
import { SECTOR_SIZE, type BlockDevice } from '../disk/block';

export const SCSI_GOOD = 0x00;
export const SCSI_CHECK_CONDITION = 0x02;

// sense keys
export const SENSE_NO_SENSE = 0x0;
export const SENSE_NOT_READY = 0x2;
export const SENSE_MEDIUM_ERROR = 0x3;
export const SENSE_ILLEGAL_REQUEST = 0x5;
export const SENSE_UNIT_ATTENTION = 0x6;
export const SENSE_DATA_PROTECT = 0x7;

export interface ScsiResult {
  /** SCSI status byte (GOOD, CHECK CONDITION, …) */
  status: number;
  /** bytes for the initiator (already cut to the CDB's allocation length) */
  dataIn: Uint8Array | null;
  /** fixed-format sense data when status is CHECK CONDITION (18 bytes) */
  sense: Uint8Array | null;
}

export interface ScsiTarget {
  readonly kind: 'disk' | 'cdrom';
  /**
   * Executes one command. `dataOut` holds the bytes the initiator sends (WRITE, MODE SELECT), or null.
   * The Promise settles when the BlockDevice has done its part; controllers deliver it with
   * core/blockio.ts completeIo(). It never rejects: host failures become CHECK CONDITION.
   */
  execute(cdb: Uint8Array, dataOut: Uint8Array | null): Promise<ScsiResult>;
  /** the bytes a command will send to the target (from its CDB), so a controller knows what to collect */
  dataOutLength(cdb: Uint8Array): number;
  /** a one-line message when the host BlockDevice fails (the guest sees a MEDIUM ERROR) */
  onWarning?: (message: string) => void;
  saveState(): unknown;
  loadState(state: unknown): void;
}

/** fixed-format sense data (SPC-3 4.5.3), 18 bytes */
export function fixedSense(key: number, asc: number, ascq: number, info?: number): Uint8Array {
  const s = new Uint8Array(18);
  s[0] = info !== undefined ? 0xf0 : 0x70; // current error, VALID when the information field is set
  s[2] = key & 0x0f;
  if (info !== undefined) be32(s, 3, info);
  s[7] = 10; // additional sense length
  s[12] = asc;
  s[13] = ascq;
  return s;
}

/** the sense key, ASC and ASCQ of fixed-format sense data */
export function senseTriple(sense: Uint8Array | null): [number, number, number] {
  if (!sense || sense.length < 14) return [0, 0, 0];
  return [sense[2] & 0x0f, sense[12], sense[13]];
}

// ---- byte helpers (big-endian, as SCSI fields are) ----

function be16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 8) & 0xff;
  b[o + 1] = v & 0xff;
}

function be32(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 24) & 0xff;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}

function be64(b: Uint8Array, o: number, v: number): void {
  be32(b, o, Math.floor(v / 0x100000000));
  be32(b, o + 4, v >>> 0);
}

function get16(b: Uint8Array, o: number): number {
  return (b[o] << 8) | b[o + 1];
}

function get24(b: Uint8Array, o: number): number {
  return (b[o] << 16) | (b[o + 1] << 8) | b[o + 2];
}

function get32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

function get64(b: Uint8Array, o: number): number {
  return get32(b, o) * 0x100000000 + get32(b, o + 4);
}

/** an ASCII field padded with spaces */
function ascii(b: Uint8Array, o: number, len: number, text: string): void {
  for (let i = 0; i < len; i++) b[o + i] = i < text.length ? text.charCodeAt(i) & 0x7f : 0x20;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** transfer length of READ/WRITE/VERIFY CDBs; `lba` and `count`, or null when the opcode is not one */
export function blockRange(cdb: Uint8Array): { lba: number; count: number } | null {
  switch (cdb[0]) {
    case 0x08: // READ(6)
    case 0x0a: // WRITE(6)
      return { lba: get24(cdb, 1) & 0x1fffff, count: cdb[4] === 0 ? 256 : cdb[4] };
    case 0x28: // READ(10)
    case 0x2a: // WRITE(10)
    case 0x2f: // VERIFY(10)
      return { lba: get32(cdb, 2), count: get16(cdb, 7) };
    case 0xa8: // READ(12)
    case 0xaa: // WRITE(12)
    case 0xaf: // VERIFY(12)
      return { lba: get32(cdb, 2), count: get32(cdb, 6) };
    case 0x88: // READ(16)
    case 0x8a: // WRITE(16)
    case 0x8f: // VERIFY(16)
      return { lba: get64(cdb, 2), count: get32(cdb, 10) };
  }
  return null;
}

interface TargetState {
  sense: number[] | null;
}

/** what ScsiDisk and ScsiCdrom share: the kept sense data and the result builders */
abstract class ScsiBase {
  onWarning?: (message: string) => void;
  /** the sense data of the last CHECK CONDITION, for REQUEST SENSE */
  protected sense: Uint8Array | null = null;

  protected good(data: Uint8Array | null = null, alloc = Infinity): ScsiResult {
    this.sense = null;
    if (data && data.length > alloc) data = data.subarray(0, alloc);
    return { status: SCSI_GOOD, dataIn: data && data.length ? data : null, sense: null };
  }

  protected check(key: number, asc: number, ascq: number): ScsiResult {
    const sense = fixedSense(key, asc, ascq);
    this.sense = sense;
    return { status: SCSI_CHECK_CONDITION, dataIn: null, sense: sense.slice() };
  }

  protected invalidOpcode(): ScsiResult {
    return this.check(SENSE_ILLEGAL_REQUEST, 0x20, 0x00);
  }

  protected invalidField(): ScsiResult {
    return this.check(SENSE_ILLEGAL_REQUEST, 0x24, 0x00);
  }

  protected outOfRange(): ScsiResult {
    return this.check(SENSE_ILLEGAL_REQUEST, 0x21, 0x00);
  }

  protected warn(message: string): void {
    this.onWarning?.(message);
  }

  /**
   * REQUEST SENSE: the kept sense data, else a pending condition the target reports (`pending`, taken
   * only when nothing is kept), else NO SENSE; the kept data is then forgotten
   */
  protected requestSense(cdb: Uint8Array, pending: () => Uint8Array | null): ScsiResult {
    const s = this.sense ?? pending() ?? fixedSense(SENSE_NO_SENSE, 0, 0);
    this.sense = null;
    const out = s.slice();
    return { status: SCSI_GOOD, dataIn: out.subarray(0, Math.min(out.length, cdb[4])), sense: null };
  }

  /** standard INQUIRY data (36 bytes) */
  protected inquiryData(type: number, removable: boolean, vendor: string, product: string, revision: string, flags7: number): Uint8Array {
    const d = new Uint8Array(36);
    d[0] = type;
    d[1] = removable ? 0x80 : 0;
    d[2] = 0x05; // SPC-3
    d[3] = 0x02; // response data format 2
    d[4] = 31;
    d[7] = flags7;
    ascii(d, 8, 8, vendor);
    ascii(d, 16, 16, product);
    ascii(d, 32, 4, revision);
    return d;
  }

  protected baseSave(): TargetState {
    return { sense: this.sense ? Array.from(this.sense) : null };
  }

  protected baseLoad(s: TargetState): void {
    this.sense = s.sense ? Uint8Array.from(s.sense) : null;
  }
}

function modeHeader(cdb: Uint8Array, pages: Uint8Array, mediumType: number, deviceSpecific: number, blockDesc: Uint8Array | null): Uint8Array {
  const ten = cdb[0] === 0x5a;
  const hdr = ten ? 8 : 4;
  const bd = blockDesc ? blockDesc.length : 0;
  const out = new Uint8Array(hdr + bd + pages.length);
  if (ten) {
    be16(out, 0, out.length - 2);
    out[2] = mediumType;
    out[3] = deviceSpecific;
    be16(out, 6, bd);
  } else {
    out[0] = Math.min(0xff, out.length - 1);
    out[1] = mediumType;
    out[2] = deviceSpecific;
    out[3] = bd;
  }
  if (blockDesc) out.set(blockDesc, hdr);
  out.set(pages, hdr + bd);
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** MODE SENSE allocation length */
function modeAlloc(cdb: Uint8Array): number {
  return cdb[0] === 0x5a ? get16(cdb, 7) : cdb[4];
}

/** MODE SELECT parameter list length */
function modeSelectLength(cdb: Uint8Array): number {
  if (cdb[0] === 0x15) return cdb[4];
  if (cdb[0] === 0x55) return get16(cdb, 7);
  return 0;
}

// ===================================================================================================
// Disk (SBC)

export interface ScsiDiskOptions {
  vendor?: string;
  product?: string;
  serial?: string;
  revision?: string;
}

interface ScsiDiskState extends TargetState {
  kind: 'disk';
  writeCache: boolean;
}

export class ScsiDisk extends ScsiBase implements ScsiTarget {
  readonly kind = 'disk' as const;
  readonly dev: BlockDevice;
  readonly vendor: string;
  readonly product: string;
  readonly serial: string;
  readonly revision: string;
  /** the caching mode page's WCE bit: writes may sit in the host's cache until SYNCHRONIZE CACHE */
  private writeCache = true;

  constructor(dev: BlockDevice, options: ScsiDiskOptions = {}) {
    super();
    this.dev = dev;
    this.vendor = options.vendor ?? 'x86vm';
    this.product = options.product ?? 'HARDDISK';
    this.serial = options.serial ?? 'X86VM0001';
    this.revision = options.revision ?? '1.0';
  }

  /** capacity in 512-byte blocks */
  get blocks(): number {
    return this.dev.sectors;
  }

  dataOutLength(cdb: Uint8Array): number {
    switch (cdb[0]) {
      case 0x0a:
      case 0x2a:
      case 0xaa:
      case 0x8a:
        return blockRange(cdb)!.count * SECTOR_SIZE;
      case 0x15:
      case 0x55:
        return modeSelectLength(cdb);
    }
    return 0;
  }

  async execute(cdb: Uint8Array, dataOut: Uint8Array | null): Promise<ScsiResult> {
    const op = cdb[0];
    if (op !== 0x03) this.sense = null;
    switch (op) {
      case 0x00: // TEST UNIT READY
      case 0x1b: // START STOP UNIT
      case 0x1e: // PREVENT ALLOW MEDIUM REMOVAL
        return this.good();
      case 0x03: // REQUEST SENSE
        return this.requestSense(cdb, () => null);
      case 0x12: // INQUIRY
        return this.inquiry(cdb);
      case 0x25: // READ CAPACITY(10)
        return this.readCapacity10();
      case 0x9e: // SERVICE ACTION IN(16)
        if ((cdb[1] & 0x1f) === 0x10) return this.readCapacity16(cdb);
        return this.invalidField();
      case 0x08:
      case 0x28:
      case 0xa8:
      case 0x88:
        return this.read(cdb);
      case 0x0a:
      case 0x2a:
      case 0xaa:
      case 0x8a:
        return this.write(cdb, dataOut);
      case 0x2f:
      case 0xaf:
      case 0x8f: {
        // VERIFY: the medium is always readable; byte-by-byte comparison (BYTCHK) is not supported
        if (cdb[1] & 0x02) return this.invalidField();
        const r = blockRange(cdb)!;
        if (r.lba + r.count > this.blocks) return this.outOfRange();
        return this.good();
      }
      case 0x35: // SYNCHRONIZE CACHE(10)
      case 0x91: // SYNCHRONIZE CACHE(16)
        return this.synchronize();
      case 0x1a: // MODE SENSE(6)
      case 0x5a: // MODE SENSE(10)
        return this.modeSense(cdb);
      case 0x15: // MODE SELECT(6)
      case 0x55: // MODE SELECT(10)
        return this.modeSelect(cdb, dataOut);
      case 0xa0: // REPORT LUNS
        return this.reportLuns(cdb);
    }
    return this.invalidOpcode();
  }

  private inquiry(cdb: Uint8Array): ScsiResult {
    const alloc = get16(cdb, 3);
    if (!(cdb[1] & 1)) {
      if (cdb[2] !== 0) return this.invalidField();
      // CMDQUE: commands may overlap (virtio-scsi queues several)
      return this.good(this.inquiryData(0x00, false, this.vendor, this.product, this.revision, 0x02), alloc);
    }
    let page: Uint8Array;
    switch (cdb[2]) {
      case 0x00: {
        const list = [0x00, 0x80, 0x83, 0xb0, 0xb1];
        page = new Uint8Array(4 + list.length);
        page.set(list, 4);
        break;
      }
      case 0x80: // unit serial number
        page = new Uint8Array(4 + this.serial.length);
        ascii(page, 4, this.serial.length, this.serial);
        break;
      case 0x83: {
        // device identification: one T10 vendor ID designator (ASCII): vendor + product + serial
        const id = this.vendor.padEnd(8, ' ').slice(0, 8) + this.product + ' ' + this.serial;
        page = new Uint8Array(8 + id.length);
        page[4] = 0x02; // code set ASCII
        page[5] = 0x01; // association: logical unit, designator type 1 (T10 vendor ID)
        page[7] = id.length;
        ascii(page, 8, id.length, id);
        break;
      }
      case 0xb0: // block limits: no limits beyond the transfer length fields
        page = new Uint8Array(0x40);
        break;
      case 0xb1: // block device characteristics: non-rotating medium
        page = new Uint8Array(0x40);
        be16(page, 4, 0x0001);
        break;
      default:
        return this.invalidField();
    }
    page[1] = cdb[2];
    be16(page, 2, page.length - 4);
    return this.good(page, alloc);
  }

  private readCapacity10(): ScsiResult {
    const d = new Uint8Array(8);
    const last = this.blocks - 1;
    be32(d, 0, last > 0xffffffff ? 0xffffffff : Math.max(0, last));
    be32(d, 4, SECTOR_SIZE);
    return this.good(d);
  }

  private readCapacity16(cdb: Uint8Array): ScsiResult {
    const d = new Uint8Array(32);
    be64(d, 0, Math.max(0, this.blocks - 1));
    be32(d, 8, SECTOR_SIZE);
    return this.good(d, get32(cdb, 10));
  }

  private async read(cdb: Uint8Array): Promise<ScsiResult> {
    const { lba, count } = blockRange(cdb)!;
    if (lba + count > this.blocks) return this.outOfRange();
    if (count === 0) return this.good();
    const buf = new Uint8Array(count * SECTOR_SIZE);
    try {
      await this.dev.read(lba, buf);
    } catch (e) {
      this.warn(`${this.dev.name}: read of ${count} sectors at ${lba} failed: ${errorText(e)}`);
      return this.check(SENSE_MEDIUM_ERROR, 0x11, 0x00);
    }
    return this.good(buf);
  }

  private async write(cdb: Uint8Array, dataOut: Uint8Array | null): Promise<ScsiResult> {
    const { lba, count } = blockRange(cdb)!;
    if (this.dev.readOnly) return this.check(SENSE_DATA_PROTECT, 0x27, 0x00);
    if (lba + count > this.blocks) return this.outOfRange();
    if (count === 0) return this.good();
    const bytes = count * SECTOR_SIZE;
    if (!dataOut || dataOut.length < bytes) return this.invalidField();
    try {
      await this.dev.write(lba, dataOut.length === bytes ? dataOut : dataOut.subarray(0, bytes));
      // FUA (not in WRITE(6)), or no write cache: the data must be on the medium before GOOD
      const fua = cdb[0] !== 0x0a && (cdb[1] & 0x08) !== 0;
      if (fua || !this.writeCache) await this.dev.flush();
    } catch (e) {
      this.warn(`${this.dev.name}: write of ${count} sectors at ${lba} failed: ${errorText(e)}`);
      return this.check(SENSE_MEDIUM_ERROR, 0x0c, 0x00);
    }
    return this.good();
  }

  private async synchronize(): Promise<ScsiResult> {
    if (this.dev.readOnly) return this.good();
    try {
      await this.dev.flush();
    } catch (e) {
      this.warn(`${this.dev.name}: flush failed: ${errorText(e)}`);
      return this.check(SENSE_MEDIUM_ERROR, 0x0c, 0x00);
    }
    return this.good();
  }

  private modePage(code: number, changeable: boolean): Uint8Array | null {
    switch (code) {
      case 0x01: {
        // read-write error recovery
        const p = new Uint8Array(12);
        p[0] = 0x01;
        p[1] = 0x0a;
        if (!changeable) {
          p[2] = 0x80; // AWRE
          p[3] = 5; // read retry count
          p[8] = 5; // write retry count
        }
        return p;
      }
      case 0x08: {
        // caching: WCE (write cache enabled) is changeable through MODE SELECT
        const p = new Uint8Array(20);
        p[0] = 0x08;
        p[1] = 0x12;
        p[2] = changeable ? 0x04 : this.writeCache ? 0x04 : 0;
        return p;
      }
      case 0x0a: {
        // control
        const p = new Uint8Array(12);
        p[0] = 0x0a;
        p[1] = 0x0a;
        return p;
      }
    }
    return null;
  }

  private modeSense(cdb: Uint8Array): ScsiResult {
    const pc = cdb[2] >> 6;
    const code = cdb[2] & 0x3f;
    const sub = cdb[3];
    if (pc === 3) return this.check(SENSE_ILLEGAL_REQUEST, 0x39, 0x00);
    if (sub !== 0 && !(code === 0x3f && sub === 0xff)) return this.invalidField();
    const changeable = pc === 1;
    let pages: Uint8Array;
    if (code === 0x3f) {
      pages = concat([0x01, 0x08, 0x0a].map((c) => this.modePage(c, changeable)!));
    } else {
      const p = this.modePage(code, changeable);
      if (!p) return this.invalidField();
      pages = p;
    }
    let bd: Uint8Array | null = null;
    if (!(cdb[1] & 0x08)) {
      // short block descriptor: number of blocks (0xFFFFFFFF when larger) and the block length
      bd = new Uint8Array(8);
      be32(bd, 0, this.blocks > 0xffffffff ? 0xffffffff : this.blocks);
      be32(bd, 4, SECTOR_SIZE);
    }
    return this.good(modeHeader(cdb, pages, 0x00, this.dev.readOnly ? 0x80 : 0x00, bd), modeAlloc(cdb));
  }

  private modeSelect(cdb: Uint8Array, data: Uint8Array | null): ScsiResult {
    const len = modeSelectLength(cdb);
    if (len === 0) return this.good();
    if (!data || data.length < len) return this.invalidField();
    if (cdb[1] & 0x01) return this.invalidField(); // SP: saving pages is not supported
    const ten = cdb[0] === 0x55;
    const hdr = ten ? 8 : 4;
    if (len < hdr) return this.check(SENSE_ILLEGAL_REQUEST, 0x1a, 0x00); // parameter list length error
    const bd = ten ? get16(data, 6) : data[3];
    let o = hdr + bd;
    let writeCache = this.writeCache;
    while (o + 2 <= len) {
      const code = data[o] & 0x3f;
      const plen = data[o + 1];
      if (o + 2 + plen > len) return this.check(SENSE_ILLEGAL_REQUEST, 0x1a, 0x00);
      if (code === 0x08) {
        if (plen < 1) return this.check(SENSE_ILLEGAL_REQUEST, 0x26, 0x00);
        writeCache = (data[o + 2] & 0x04) !== 0;
      } else if (code !== 0x01 && code !== 0x0a) {
        return this.check(SENSE_ILLEGAL_REQUEST, 0x26, 0x00); // invalid field in parameter list
      }
      o += 2 + plen;
    }
    this.writeCache = writeCache;
    return this.good();
  }

  private reportLuns(cdb: Uint8Array): ScsiResult {
    const d = new Uint8Array(16);
    be32(d, 0, 8); // one LUN: 0
    return this.good(d, get32(cdb, 6));
  }

  saveState(): ScsiDiskState {
    return { kind: 'disk', ...this.baseSave(), writeCache: this.writeCache };
  }

  loadState(state: unknown): void {
    const s = state as ScsiDiskState;
    this.baseLoad(s);
    this.writeCache = s.writeCache !== false;
  }
}

// ===================================================================================================
// CD-ROM (MMC)

/** 2048-byte CD blocks */
export const CD_BLOCK = 2048;
const SECTORS_PER_CD_BLOCK = CD_BLOCK / SECTOR_SIZE;

/** GET EVENT STATUS NOTIFICATION media event codes */
export const MEDIA_EVENT_NONE = 0;
export const MEDIA_EVENT_EJECT_REQUEST = 1;
export const MEDIA_EVENT_NEW_MEDIA = 2;
export const MEDIA_EVENT_REMOVAL = 3;

/** the CD's read speed announced in the capabilities page, in kB/s (32x) */
const CD_SPEED_KBS = 32 * 176;

export interface ScsiCdromOptions {
  vendor?: string;
  product?: string;
  revision?: string;
  /** the Core feature's physical interface standard (GET CONFIGURATION): 1 SCSI, 2 ATAPI (default) */
  physicalInterface?: number;
}

interface ScsiCdromState extends TargetState {
  kind: 'cdrom';
  trayOpen: boolean;
  locked: boolean;
  unitAttention: boolean;
  mediaEvent: number;
  /** whether a medium was attached when the state was saved (the host re-attaches it) */
  hadMedium: boolean;
}

/** LBA → minutes/seconds/frames, with the 2-second (150-frame) lead-in offset */
export function lbaToMsf(lba: number): [number, number, number] {
  const f = lba + 150;
  return [Math.floor(f / (75 * 60)), Math.floor(f / 75) % 60, f % 75];
}

export class ScsiCdrom extends ScsiBase implements ScsiTarget {
  readonly kind = 'cdrom' as const;
  readonly vendor: string;
  readonly product: string;
  readonly revision: string;
  private readonly physicalInterface: number;
  private medium: BlockDevice | null;
  private trayOpen = false;
  private prevent = false;
  /** a new medium not yet reported to the initiator (UNIT ATTENTION 06/28/00) */
  private unitAttention = false;
  /** the media event GET EVENT STATUS NOTIFICATION reports next */
  private mediaEvent = MEDIA_EVENT_NONE;

  constructor(dev: BlockDevice | null, options: ScsiCdromOptions = {}) {
    super();
    this.medium = dev;
    this.vendor = options.vendor ?? 'x86vm';
    this.product = options.product ?? 'DVD-ROM';
    this.revision = options.revision ?? '1.0';
    this.physicalInterface = options.physicalInterface ?? 2;
  }

  /** the inserted medium (null: none) */
  get dev(): BlockDevice | null {
    return this.medium;
  }

  /** the guest prevents medium removal (PREVENT ALLOW MEDIUM REMOVAL); the host should not eject then */
  get locked(): boolean {
    return this.prevent;
  }

  /** a medium is in the drive and the tray is closed */
  get mediumPresent(): boolean {
    return this.medium !== null && !this.trayOpen;
  }

  /** capacity in 2048-byte blocks */
  get blocks(): number {
    return this.medium ? Math.floor(this.medium.sectors / SECTORS_PER_CD_BLOCK) : 0;
  }

  /**
   * The host changes the medium: a BlockDevice inserts it (and closes the tray), null removes it. The
   * guest sees UNIT ATTENTION 06/28/00 once and a media event. Works even while the guest has the tray
   * locked (like a forced eject); check `locked` first to honour the lock.
   */
  insert(dev: BlockDevice | null): void {
    this.medium = dev;
    this.trayOpen = false;
    if (dev) {
      this.unitAttention = true;
      this.mediaEvent = MEDIA_EVENT_NEW_MEDIA;
    } else {
      this.unitAttention = false;
      this.mediaEvent = MEDIA_EVENT_REMOVAL;
    }
  }

  dataOutLength(cdb: Uint8Array): number {
    return modeSelectLength(cdb);
  }

  async execute(cdb: Uint8Array, dataOut: Uint8Array | null): Promise<ScsiResult> {
    const op = cdb[0];
    // commands that neither report nor clear a unit attention, and need no medium
    switch (op) {
      case 0x03: // REQUEST SENSE
        return this.requestSense(cdb, () => this.takeAttention());
      case 0x12: // INQUIRY
        this.sense = null;
        return this.inquiry(cdb);
      case 0x46: // GET CONFIGURATION
        this.sense = null;
        return this.getConfiguration(cdb);
      case 0x4a: // GET EVENT STATUS NOTIFICATION
        this.sense = null;
        return this.eventStatus(cdb);
    }
    this.sense = null;
    if (this.takeAttention()) return this.check(SENSE_UNIT_ATTENTION, 0x28, 0x00);
    switch (op) {
      case 0x00: // TEST UNIT READY
        return this.needMedium() ?? this.good();
      case 0x1b: // START STOP UNIT
        return this.startStop(cdb);
      case 0x1e: // PREVENT ALLOW MEDIUM REMOVAL
        this.prevent = (cdb[4] & 0x01) !== 0;
        return this.good();
      case 0x25: // READ CAPACITY
        return this.needMedium() ?? this.readCapacity();
      case 0x28: // READ(10)
      case 0xa8: // READ(12)
        return this.needMedium() ?? this.read(cdb);
      case 0x2b: // SEEK(10)
        return this.needMedium() ?? (get32(cdb, 2) >= this.blocks ? this.outOfRange() : this.good());
      case 0x2f: // VERIFY(10)
        return this.needMedium() ?? this.verify(cdb);
      case 0x43: // READ TOC/PMA/ATIP
        return this.needMedium() ?? this.readToc(cdb);
      case 0x51: // READ DISC INFORMATION
        return this.needMedium() ?? this.discInformation(cdb);
      case 0x1a: // MODE SENSE(6)
      case 0x5a: // MODE SENSE(10)
        return this.modeSense(cdb);
      case 0x15: // MODE SELECT(6)
      case 0x55: // MODE SELECT(10): parameters are accepted and ignored
        if (dataOut === null && modeSelectLength(cdb) > 0) return this.invalidField();
        return this.good();
      case 0xbd: // MECHANISM STATUS
        return this.mechanismStatus(cdb);
      case 0xbb: // SET CD SPEED
      case 0x35: // SYNCHRONIZE CACHE
        return this.good();
    }
    return this.invalidOpcode();
  }

  private takeAttention(): Uint8Array | null {
    if (!this.unitAttention) return null;
    this.unitAttention = false;
    return fixedSense(SENSE_UNIT_ATTENTION, 0x28, 0x00);
  }

  private needMedium(): ScsiResult | null {
    if (this.mediumPresent) return null;
    return this.check(SENSE_NOT_READY, 0x3a, 0x00);
  }

  private inquiry(cdb: Uint8Array): ScsiResult {
    const alloc = get16(cdb, 3);
    if (!(cdb[1] & 1)) {
      if (cdb[2] !== 0) return this.invalidField();
      return this.good(this.inquiryData(0x05, true, this.vendor, this.product, this.revision, 0), alloc);
    }
    if (cdb[2] !== 0x00) return this.invalidField();
    const page = new Uint8Array(5);
    page[3] = 1; // supported pages: just this one
    return this.good(page, alloc);
  }

  private startStop(cdb: Uint8Array): ScsiResult {
    const loej = (cdb[4] & 0x02) !== 0;
    const start = (cdb[4] & 0x01) !== 0;
    if (!loej) return this.good();
    if (!start) {
      // eject
      if (this.prevent) return this.check(SENSE_ILLEGAL_REQUEST, 0x53, 0x02);
      if (!this.trayOpen) {
        this.trayOpen = true;
        if (this.medium) this.mediaEvent = MEDIA_EVENT_REMOVAL;
      }
      return this.good();
    }
    // load: close the tray; the medium that was in it is back
    if (this.trayOpen) {
      this.trayOpen = false;
      if (this.medium) {
        this.mediaEvent = MEDIA_EVENT_NEW_MEDIA;
      }
    }
    return this.good();
  }

  private readCapacity(): ScsiResult {
    const d = new Uint8Array(8);
    be32(d, 0, Math.max(0, this.blocks - 1));
    be32(d, 4, CD_BLOCK);
    return this.good(d);
  }

  private async read(cdb: Uint8Array): Promise<ScsiResult> {
    const lba = get32(cdb, 2);
    const count = cdb[0] === 0x28 ? get16(cdb, 7) : get32(cdb, 6);
    if (lba + count > this.blocks) return this.outOfRange();
    if (count === 0) return this.good();
    const dev = this.medium!;
    const buf = new Uint8Array(count * CD_BLOCK);
    try {
      await dev.read(lba * SECTORS_PER_CD_BLOCK, buf);
    } catch (e) {
      this.warn(`${dev.name}: read of ${count} CD blocks at ${lba} failed: ${errorText(e)}`);
      return this.check(SENSE_MEDIUM_ERROR, 0x11, 0x00);
    }
    return this.good(buf);
  }

  private verify(cdb: Uint8Array): ScsiResult {
    if (cdb[1] & 0x02) return this.invalidField();
    if (get32(cdb, 2) + get16(cdb, 7) > this.blocks) return this.outOfRange();
    return this.good();
  }

  /** READ TOC/PMA/ATIP formats 0 (TOC), 1 (session information) and 2 (raw TOC) of a one-track disc */
  private readToc(cdb: Uint8Array): ScsiResult {
    const msf = (cdb[1] & 0x02) !== 0;
    let format = cdb[2] & 0x0f;
    if (format === 0) format = cdb[9] >> 6; // the older place of the format field (SFF-8020)
    const track = cdb[6];
    const alloc = get16(cdb, 7);
    const leadOut = this.blocks;
    const addr = (b: Uint8Array, o: number, lba: number): void => {
      if (msf) {
        const [m, s, f] = lbaToMsf(lba);
        b[o] = 0;
        b[o + 1] = m;
        b[o + 2] = s;
        b[o + 3] = f;
      } else {
        be32(b, o, lba);
      }
    };
    switch (format) {
      case 0: {
        if (track > 1 && track !== 0xaa) return this.invalidField();
        const entries: [number, number][] = [];
        if (track <= 1) entries.push([1, 0]);
        entries.push([0xaa, leadOut]);
        const d = new Uint8Array(4 + 8 * entries.length);
        be16(d, 0, d.length - 2);
        d[2] = 1; // first track
        d[3] = 1; // last track
        entries.forEach(([t, lba], i) => {
          const o = 4 + 8 * i;
          d[o + 1] = 0x14; // ADR 1 (Q sub-channel position), control 4 (data track)
          d[o + 2] = t;
          addr(d, o + 4, lba);
        });
        return this.good(d, alloc);
      }
      case 1: {
        const d = new Uint8Array(12);
        be16(d, 0, 10);
        d[2] = 1; // first session
        d[3] = 1; // last session
        d[5] = 0x14;
        d[6] = 1; // first track in the last session
        addr(d, 8, 0);
        return this.good(d, alloc);
      }
      case 2: {
        // raw TOC: points A0 (first track), A1 (last track), A2 (lead-out) and track 1, all in MSF
        const points: [number, number, number, number][] = [
          [0xa0, 1, 0x00, 0], // first track 1, disc type 00 (CD-DA / CD-ROM)
          [0xa1, 1, 0, 0],
          [0xa2, ...lbaToMsf(leadOut)],
          [1, ...lbaToMsf(0)],
        ];
        const d = new Uint8Array(4 + 11 * points.length);
        be16(d, 0, d.length - 2);
        d[2] = 1;
        d[3] = 1;
        points.forEach(([point, pm, ps, pf], i) => {
          const o = 4 + 11 * i;
          d[o] = 1; // session
          d[o + 1] = 0x14;
          d[o + 3] = point;
          d[o + 8] = pm;
          d[o + 9] = ps;
          d[o + 10] = pf;
        });
        return this.good(d, alloc);
      }
    }
    return this.invalidField();
  }

  private discInformation(cdb: Uint8Array): ScsiResult {
    if ((cdb[1] & 0x07) !== 0) return this.invalidField();
    const d = new Uint8Array(34);
    be16(d, 0, 32);
    d[2] = 0x0e; // last session complete, disc finalized
    d[3] = 1; // first track on the disc
    d[4] = 1; // sessions
    d[5] = 1; // first track in the last session
    d[6] = 1; // last track in the last session
    d[7] = 0x20; // unrestricted use
    d[8] = 0x00; // disc type CD-DA or CD-ROM
    be32(d, 16, 0xffffffff); // last session lead-in start (none: finalized)
    be32(d, 20, 0xffffffff); // last possible lead-out start
    return this.good(d, get16(cdb, 7));
  }

  private modePage(code: number, changeable: boolean): Uint8Array | null {
    switch (code) {
      case 0x01: {
        const p = new Uint8Array(12);
        p[0] = 0x01;
        p[1] = 0x0a;
        if (!changeable) {
          p[3] = 5; // read retry count
        }
        return p;
      }
      case 0x0e: {
        // CD audio control: both output ports at full volume
        const p = new Uint8Array(16);
        p[0] = 0x0e;
        p[1] = 0x0e;
        if (!changeable) {
          p[2] = 0x04; // Immed
          p[8] = 0x01;
          p[9] = 0xff;
          p[10] = 0x02;
          p[11] = 0xff;
        }
        return p;
      }
      case 0x2a: {
        // CD/DVD capabilities and mechanical status
        const p = new Uint8Array(22);
        p[0] = 0x2a;
        p[1] = 0x14;
        if (!changeable) {
          p[2] = 0x03; // reads CD-R and CD-RW media
          p[3] = 0x00; // writes nothing
          p[4] = 0x70; // multi-session, mode 2 form 1 and form 2
          p[5] = 0x00;
          // tray loading mechanism, eject, lock (+ current lock state)
          p[6] = 0x20 | 0x08 | 0x01 | (this.prevent ? 0x02 : 0);
          be16(p, 8, CD_SPEED_KBS); // maximum read speed
          be16(p, 10, 256); // volume levels
          be16(p, 12, 512); // buffer size in KiB
          be16(p, 14, CD_SPEED_KBS); // current read speed
        }
        return p;
      }
    }
    return null;
  }

  private modeSense(cdb: Uint8Array): ScsiResult {
    const pc = cdb[2] >> 6;
    const code = cdb[2] & 0x3f;
    if (pc === 3) return this.check(SENSE_ILLEGAL_REQUEST, 0x39, 0x00);
    if (cdb[3] !== 0 && !(code === 0x3f && cdb[3] === 0xff)) return this.invalidField();
    const changeable = pc === 1;
    let pages: Uint8Array;
    if (code === 0x3f) {
      pages = concat([0x01, 0x0e, 0x2a].map((c) => this.modePage(c, changeable)!));
    } else {
      const p = this.modePage(code, changeable);
      if (!p) return this.invalidField();
      pages = p;
    }
    // medium type: 01 = 120 mm CD-ROM data only, 70 = no disc (door closed), 71 = door open
    const medium = this.mediumPresent ? 0x01 : this.trayOpen ? 0x71 : 0x70;
    return this.good(modeHeader(cdb, pages, medium, 0, null), modeAlloc(cdb));
  }

  /** GET CONFIGURATION: the CD-ROM profile and its features */
  private getConfiguration(cdb: Uint8Array): ScsiResult {
    const rt = cdb[1] & 0x03;
    const start = get16(cdb, 2);
    const alloc = get16(cdb, 7);
    if (rt === 3) return this.invalidField();
    const present = this.mediumPresent;
    const feature = (code: number, version: number, persistent: boolean, current: boolean, data: number[]): Uint8Array => {
      const f = new Uint8Array(4 + data.length);
      be16(f, 0, code);
      f[2] = (version << 2) | (persistent ? 2 : 0) | (current ? 1 : 0);
      f[3] = data.length;
      f.set(data, 4);
      return f;
    };
    const pi = this.physicalInterface;
    const all: [number, boolean, Uint8Array][] = [
      [0x0000, true, feature(0x0000, 0, true, true, [0x00, 0x08, present ? 1 : 0, 0])], // profile list: CD-ROM
      [0x0001, true, feature(0x0001, 1, true, true, [pi >>> 24, (pi >>> 16) & 0xff, (pi >>> 8) & 0xff, pi & 0xff, 0, 0, 0, 0])],
      [0x0002, true, feature(0x0002, 1, true, true, [0x02, 0, 0, 0])], // morphing: polled GESN (OCEvent)
      [0x0003, true, feature(0x0003, 0, true, true, [0x29, 0, 0, 0])], // removable medium: tray, eject, lock
      [0x0010, present, feature(0x0010, 0, false, present, [0, 0, CD_BLOCK >> 8, 0, 0, 1, 0, 0])], // random readable
      [0x001d, present, feature(0x001d, 0, false, present, [])], // multi-read
      [0x001e, present, feature(0x001e, 2, false, present, [0, 0, 0, 0])], // CD read
      [0x0100, true, feature(0x0100, 0, true, true, [])], // power management
    ];
    let chosen: Uint8Array[];
    if (rt === 2) chosen = all.filter(([code]) => code === start).map(([, , f]) => f);
    else chosen = all.filter(([code, current]) => code >= start && (rt === 0 || current)).map(([, , f]) => f);
    const body = concat(chosen);
    const d = new Uint8Array(8 + body.length);
    be32(d, 0, d.length - 4);
    be16(d, 6, present ? 0x0008 : 0x0000); // current profile
    d.set(body, 8);
    return this.good(d, alloc);
  }

  /** GET EVENT STATUS NOTIFICATION (polled): the media class */
  private eventStatus(cdb: Uint8Array): ScsiResult {
    if (!(cdb[1] & 0x01)) return this.invalidField(); // only polled operation
    const classes = cdb[4];
    const alloc = get16(cdb, 7);
    if (!(classes & 0x10)) {
      // no supported class requested: header only, "no event available"
      const d = new Uint8Array(4);
      be16(d, 0, 2);
      d[2] = 0x80;
      d[3] = 0x10;
      return this.good(d, alloc);
    }
    const d = new Uint8Array(8);
    be16(d, 0, 6);
    d[2] = 0x04; // media class
    d[3] = 0x10; // supported: media
    d[4] = this.mediaEvent;
    d[5] = (this.mediumPresent ? 0x02 : 0) | (this.trayOpen ? 0x01 : 0);
    this.mediaEvent = MEDIA_EVENT_NONE;
    return this.good(d, alloc);
  }

  private mechanismStatus(cdb: Uint8Array): ScsiResult {
    const d = new Uint8Array(8);
    d[1] = this.trayOpen ? 0x10 : 0x00; // mechanism idle, door open bit
    return this.good(d, get16(cdb, 8));
  }

  saveState(): ScsiCdromState {
    return {
      kind: 'cdrom',
      ...this.baseSave(),
      trayOpen: this.trayOpen,
      locked: this.prevent,
      unitAttention: this.unitAttention,
      mediaEvent: this.mediaEvent,
      hadMedium: this.medium !== null,
    };
  }

  /** restores the drive's state; the medium itself is whatever the host attached (insert() before or after) */
  loadState(state: unknown): void {
    const s = state as ScsiCdromState;
    this.baseLoad(s);
    this.trayOpen = !!s.trayOpen;
    this.prevent = !!s.locked;
    this.unitAttention = !!s.unitAttention;
    this.mediaEvent = s.mediaEvent | 0;
  }
}
