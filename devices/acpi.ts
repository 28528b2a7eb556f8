/**
 * ACPI power management: the PIIX4 power-management function (82371AB function 3, 8086:7113) at 00:01.3,
 * as QEMU's PC places it next to a PIIX3 ISA bridge.
 *
 * Written from the ACPI specification (fixed hardware registers: PM1 event/control blocks, PM timer, GPE
 * blocks) and the 82371AB datasheet (PMBA at 0x40, PMREGMISC at 0x80, DEVACTB at 0x58, APM ports
 * 0xB2/0xB3). The PM register block is 64 bytes of I/O at PMBA, decoded while PMREGMISC bit 0 is set:
 *   +0x00 PM1_STS (16, write 1 to clear): TMR_STS 0, GBL_STS 5, PWRBTN_STS 8, RTC_STS 10, WAK_STS 15
 *   +0x02 PM1_EN  (16): TMR_EN 0, GBL_EN 5, PWRBTN_EN 8, RTC_EN 10
 *   +0x04 PM1_CNT (16): SCI_EN 0, SLP_TYP 12:10, SLP_EN 13 (write-only)
 *   +0x08 PM_TMR  (32, read-only): 24-bit counter at 3.579545 MHz derived from clock.now()
 * GPE0 (status 16 bits, enable 16 bits) sits at the fixed port 0xAFE0 as on QEMU's PIIX4.
 * SeaBIOS (when fw_cfg offers "etc/table-loader") programs PMBA = 0x600 and enables the block; the
 * FADT built by core/acpi-tables.ts publishes the same addresses (ACPI_PM_BASE). For boots without a BIOS
 * call enableAt(ACPI_PM_BASE).
 *
 * ACPI mode: FADT SMI_CMD = 0xB2 with ACPI_ENABLE 0xF1 / ACPI_DISABLE 0xF0; a write of those values to
 * 0xB2 sets / clears SCI_EN (what the SMI handler does on real boards). Config byte 0x5B is 0x02 at reset
 * (APMC_EN): it tells SeaBIOS that SMM is already initialised, since x86vm has no SMM.
 *
 * The SCI is ISA IRQ 9, level-triggered, active high (MADT override). It is asserted while SCI_EN is set
 * and some enabled PM1 or GPE0 status bit is set. Sleep: writing SLP_EN with SLP_TYP = SLP_TYP_S5 (0, the
 * PIIX4's soft-off encoding, also QEMU's) powers the machine off: host.stop({kind:'poweroff'}). The DSDT's
 * \_S5 package carries the same value. Other sleep types are ignored (no S1–S4).
 */
import type { Clock } from '../core/clock';
import type { IrqLine } from '../core/host';
import type { IoBus } from '../core/iobus';
import type { StopReason } from '../core/machine';
import type { AcpiLayout } from '../core/acpi-tables';
import { PciDevice } from './pci';

export const ACPI_PM_BASE = 0x600;
export const ACPI_PM_LEN = 64;
export const ACPI_PM1_EVT_BLK = ACPI_PM_BASE;
export const ACPI_PM1_CNT_BLK = ACPI_PM_BASE + 4;
export const ACPI_PM_TMR_BLK = ACPI_PM_BASE + 8;
export const ACPI_GPE0_BLK = 0xafe0;
export const ACPI_GPE0_LEN = 4;
export const ACPI_SMI_CMD = 0xb2;
export const ACPI_ENABLE = 0xf1;
export const ACPI_DISABLE = 0xf0;
export const ACPI_SCI_IRQ = 9;
/** SLP_TYP that means S5 (soft off) on this device; the DSDT's \_S5 uses it */
export const SLP_TYP_S5 = 0;
/** the FADT reset register: a write of RESET_VALUE to I/O port RESET_PORT (the PIIX's 0xCF9) */
export const ACPI_RESET_PORT = 0xcf9;
export const ACPI_RESET_VALUE = 0x06;
export const PM_TIMER_HZ = 3579545;

/** the register addresses of this device as the ACPI table builder (core/acpi-tables.ts) needs them */
export const PIIX4_ACPI_LAYOUT: AcpiLayout = {
  pm1aEvt: ACPI_PM1_EVT_BLK,
  pm1aCnt: ACPI_PM1_CNT_BLK,
  pmTmr: ACPI_PM_TMR_BLK,
  gpe0: ACPI_GPE0_BLK,
  gpe0Len: ACPI_GPE0_LEN,
  sciIrq: ACPI_SCI_IRQ,
  smiCmd: ACPI_SMI_CMD,
  acpiEnable: ACPI_ENABLE,
  acpiDisable: ACPI_DISABLE,
  resetPort: ACPI_RESET_PORT,
  resetValue: ACPI_RESET_VALUE,
  slpTypS5: SLP_TYP_S5,
};

export const PM1_TMR_STS = 0x0001;
export const PM1_GBL_STS = 0x0020;
export const PM1_PWRBTN_STS = 0x0100;
export const PM1_RTC_STS = 0x0400;
export const PM1_WAK_STS = 0x8000;
export const PM1_TMR_EN = 0x0001;
export const PM1_PWRBTN_EN = 0x0100;
export const PM1_CNT_SCI_EN = 0x0001;
export const PM1_CNT_SLP_EN = 0x2000;

const PM1_STS_MASK = PM1_TMR_STS | PM1_GBL_STS | PM1_PWRBTN_STS | PM1_RTC_STS | PM1_WAK_STS;
const PM1_EN_MASK = 0x0521;
const PIIX_PMBA = 0x40;
const PIIX_PMREGMISC = 0x80;
const PIIX_DEVACTB = 0x58;
const PIIX_SMBHSTBASE = 0x90;
const TMR_BIT23 = 1 << 23;

/** PM timer ticks at guest time ns (exact for any realistic uptime) */
export function pmTicksAt(ns: number): number {
  if (ns <= 0) return 0;
  const sec = Math.floor(ns / 1e9);
  const rem = ns - sec * 1e9;
  return sec * PM_TIMER_HZ + Math.floor((rem * PM_TIMER_HZ) / 1e9);
}

/** the first guest ns at which the tick count reaches `tick` */
export function nsOfPmTick(tick: number): number {
  const sec = Math.floor(tick / PM_TIMER_HZ);
  const rem = tick - sec * PM_TIMER_HZ;
  return sec * 1e9 + Math.ceil((rem * 1e9) / PM_TIMER_HZ);
}

export interface AcpiPmHost {
  readonly io: IoBus;
  readonly clock: Pick<Clock, 'now' | 'at' | 'cancel'>;
  stop(reason: StopReason): void;
}

export interface AcpiPmExtra {
  sts: number;
  en: number;
  cnt: number;
  /** bit-23 toggle count the guest last acknowledged (TMR_STS is set once the count passes it) */
  tmrAck: number;
  gpeSts: number;
  gpeEn: number;
  apmc: number;
  apms: number;
}

export class AcpiPm extends PciDevice {
  private readonly host: AcpiPmHost;
  private readonly sci: IrqLine | null;
  private sts = 0;
  private en = 0;
  private cnt = 0;
  private tmrAck = 0;
  private gpeSts = 0;
  private gpeEn = 0;
  private apmc = 0;
  private apms = 0;
  private sciLevel = false;
  private ioBase = -1;
  private timer = -1;

  constructor(host: AcpiPmHost, sci: IrqLine | null) {
    super({
      name: 'piix4-pm',
      vendorId: 0x8086,
      deviceId: 0x7113,
      classCode: 0x068000,
      revision: 0x03,
      interruptPin: 1,
      hardwiredIrq: ACPI_SCI_IRQ,
    });
    this.host = host;
    this.sci = sci;
    this.config[PIIX_PMBA] = 0x01; // I/O space indicator, read-only
    this.wmask[PIIX_PMBA] = 0xc0;
    this.wmask[PIIX_PMBA + 1] = 0xff;
    this.wmask[PIIX_PMREGMISC] = 0x01;
    for (let o = PIIX_DEVACTB; o < PIIX_DEVACTB + 4; o++) this.wmask[o] = 0xff;
    this.config[PIIX_DEVACTB + 3] = 0x02; // APMC_EN: "SMM already initialised"
    this.config[PIIX_SMBHSTBASE] = 0x01;
    this.wmask[PIIX_SMBHSTBASE] = 0xf0;
    this.wmask[PIIX_SMBHSTBASE + 1] = 0xff;
    this.wmask[0xd2] = 0x0f; // SMBHSTCFG
    this.wmask[0x42] = 0xff; // (QEMU stores these)
    this.captureResetState();
    this.tmrAck = this.toggles();
    host.io.register('acpi-apm', ACPI_SMI_CMD, 2, {
      read8: (p) => (p === ACPI_SMI_CMD ? this.apmc : this.apms),
      write8: (p, v) => this.apmWrite(p, v),
    });
    host.io.register('acpi-gpe0', ACPI_GPE0_BLK, ACPI_GPE0_LEN, {
      read8: (p) => this.gpeRead(p - ACPI_GPE0_BLK),
      write8: (p, v) => this.gpeWrite(p - ACPI_GPE0_BLK, v),
    });
  }

  /** what firmware does: PMBA = base, PM I/O enabled, SCI line 9 (for boots without a BIOS) */
  enableAt(base = ACPI_PM_BASE): void {
    this.writeConfig(PIIX_PMBA, base | 1, 4);
    this.writeConfig(PIIX_PMREGMISC, 1, 1);
    this.writeConfig(0x3c, ACPI_SCI_IRQ, 1);
  }

  /** the I/O base of the PM block while decoded, else -1 */
  get pmBase(): number {
    return this.ioBase;
  }

  get sciAsserted(): boolean {
    return this.sciLevel;
  }

  /** the current PM timer value (24 bits) */
  timerValue(): number {
    return pmTicksAt(this.host.clock.now()) & 0xffffff;
  }

  /** presses the power button: the guest sees PWRBTN_STS (and an SCI if it enabled PWRBTN_EN) */
  powerButton(): void {
    this.sts |= PM1_PWRBTN_STS;
    this.update();
  }

  /** sets a GPE0 status bit (0–15), e.g. for hot-plug or wake events */
  raiseGpe(bit: number): void {
    this.gpeSts |= 1 << bit;
    this.update();
  }

  // ---- PCI config ----

  override configWritten(offset: number, size: number): void {
    if ((offset < PIIX_PMBA + 4 && offset + size > PIIX_PMBA) || (offset <= PIIX_PMREGMISC && offset + size > PIIX_PMREGMISC)) {
      this.updateIo();
    }
  }

  private updateIo(): void {
    const enabled = (this.config[PIIX_PMREGMISC] & 1) !== 0;
    const base = this.get32(PIIX_PMBA) & 0xffc0;
    const want = enabled && base !== 0 ? base : -1;
    if (want === this.ioBase) return;
    if (this.ioBase >= 0) this.host.io.unregister(this.ioBase, ACPI_PM_LEN);
    this.ioBase = -1;
    if (want >= 0) {
      for (let p = want; p < want + ACPI_PM_LEN; p++) if (this.host.io.ownerOf(p) !== undefined) return;
      this.host.io.register('acpi-pm', want, ACPI_PM_LEN, {
        read8: (p) => this.pmRead(p - this.ioBase, 1),
        read16: (p) => this.pmRead(p - this.ioBase, 2),
        read32: (p) => this.pmRead(p - this.ioBase, 4),
        write8: (p, v) => this.pmWrite(p - this.ioBase, v, 1),
        write16: (p, v) => this.pmWrite(p - this.ioBase, v, 2),
        write32: (p, v) => this.pmWrite(p - this.ioBase, v, 4),
      });
      this.ioBase = want;
    }
  }

  // ---- PM1 registers ----

  private toggles(): number {
    return Math.floor(pmTicksAt(this.host.clock.now()) / TMR_BIT23);
  }

  /** PM1_STS as the guest sees it */
  pm1Status(): number {
    return this.sts | (this.toggles() > this.tmrAck ? PM1_TMR_STS : 0);
  }

  private pmRead(off: number, size: number): number {
    let tmr = -1;
    let v = 0;
    for (let i = 0; i < size; i++) {
      const o = off + i;
      let b = 0;
      if (o < 2) b = this.pm1Status() >> (8 * o);
      else if (o < 4) b = this.en >> (8 * (o - 2));
      else if (o < 6) b = (this.cnt & ~PM1_CNT_SLP_EN) >> (8 * (o - 4));
      else if (o >= 8 && o < 12) {
        if (tmr < 0) tmr = this.timerValue();
        b = tmr >>> (8 * (o - 8));
      }
      v |= (b & 0xff) << (8 * i);
    }
    return size === 4 ? v | 0 : v;
  }

  private pmWrite(off: number, value: number, size: number): void {
    for (let i = 0; i < size; i++) {
      const o = off + i;
      const b = (value >>> (8 * i)) & 0xff;
      if (o < 2) {
        const clear = (b << (8 * o)) & PM1_STS_MASK;
        if (clear & PM1_TMR_STS) this.tmrAck = this.toggles();
        this.sts &= ~clear;
      } else if (o < 4) {
        const sh = 8 * (o - 2);
        this.en = ((this.en & ~(0xff << sh)) | (b << sh)) & PM1_EN_MASK;
      } else if (o < 6) {
        const sh = 8 * (o - 4);
        this.cnt = (this.cnt & ~(0xff << sh)) | (b << sh);
        if (o === 5 && this.cnt & PM1_CNT_SLP_EN) {
          this.cnt &= ~PM1_CNT_SLP_EN;
          this.sleep((this.cnt >> 10) & 7);
        }
      }
    }
    this.update();
  }

  private sleep(type: number): void {
    if (type === SLP_TYP_S5) this.host.stop({ kind: 'poweroff' });
  }

  // ---- GPE0 ----

  private gpeRead(off: number): number {
    if (off < 2) return (this.gpeSts >> (8 * off)) & 0xff;
    return (this.gpeEn >> (8 * (off - 2))) & 0xff;
  }

  private gpeWrite(off: number, v: number): void {
    if (off < 2) this.gpeSts &= ~(v << (8 * off));
    else {
      const sh = 8 * (off - 2);
      this.gpeEn = (this.gpeEn & ~(0xff << sh)) | (v << sh);
    }
    this.update();
  }

  // ---- APM control / status (SMI_CMD) ----

  private apmWrite(port: number, v: number): void {
    if (port === ACPI_SMI_CMD) {
      this.apmc = v;
      if (v === ACPI_ENABLE) this.cnt |= PM1_CNT_SCI_EN;
      else if (v === ACPI_DISABLE) this.cnt &= ~PM1_CNT_SCI_EN;
      this.update();
    } else {
      this.apms = v;
    }
  }

  // ---- SCI ----

  private update(): void {
    const sts = this.pm1Status();
    const level = (this.cnt & PM1_CNT_SCI_EN) !== 0 && ((sts & this.en) !== 0 || (this.gpeSts & this.gpeEn) !== 0);
    if (level !== this.sciLevel) {
      this.sciLevel = level;
      this.sci?.(level);
    }
    // wake up at the next bit-23 toggle when that would raise the SCI
    const want = (this.en & PM1_TMR_EN) !== 0 && (sts & PM1_TMR_STS) === 0;
    if (this.timer >= 0) {
      this.host.clock.cancel(this.timer);
      this.timer = -1;
    }
    if (want) {
      const at = nsOfPmTick((this.tmrAck + 1) * TMR_BIT23);
      this.timer = this.host.clock.at(at, () => {
        this.timer = -1;
        this.update();
      });
    }
  }

  override reset(): void {
    if (this.ioBase >= 0) this.host.io.unregister(this.ioBase, ACPI_PM_LEN);
    this.ioBase = -1;
    super.reset();
    this.sts = 0;
    this.en = 0;
    this.cnt = 0;
    this.gpeSts = 0;
    this.gpeEn = 0;
    this.apmc = 0;
    this.apms = 0;
    this.tmrAck = this.toggles();
    this.update();
  }

  override saveExtra(): AcpiPmExtra {
    return {
      sts: this.sts,
      en: this.en,
      cnt: this.cnt,
      tmrAck: this.tmrAck,
      gpeSts: this.gpeSts,
      gpeEn: this.gpeEn,
      apmc: this.apmc,
      apms: this.apms,
    };
  }

  override loadExtra(state: unknown): void {
    const s = state as AcpiPmExtra;
    this.sts = s.sts & PM1_STS_MASK;
    this.en = s.en & PM1_EN_MASK;
    this.cnt = s.cnt & ~PM1_CNT_SLP_EN;
    this.tmrAck = s.tmrAck;
    this.gpeSts = s.gpeSts & 0xffff;
    this.gpeEn = s.gpeEn & 0xffff;
    this.apmc = s.apmc & 0xff;
    this.apms = s.apms & 0xff;
  }

  override loadState(state: unknown): void {
    super.loadState(state);
    this.updateIo();
    this.update();
  }
}
