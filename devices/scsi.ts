/**
 * SCSI targets shared by the controllers that speak SCSI commands: ATAPI on IDE (packet commands are the
 * MMC command set) and virtio-scsi. A target executes one command descriptor block (CDB) at a time
 * against a disk/ BlockDevice and returns the status, the data for the initiator and the sense data.
 *
 * INTERFACE ONLY so far: implementations (ScsiDisk: SBC commands; ScsiCdrom: MMC commands with media
 * change) are being written in this file.
 */
import type { BlockDevice } from '../disk/block';

export const SCSI_GOOD = 0x00;
export const SCSI_CHECK_CONDITION = 0x02;

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
   * core/blockio.ts completeIo().
   */
  execute(cdb: Uint8Array, dataOut: Uint8Array | null): Promise<ScsiResult>;
  /** the bytes a command will send to the target (from its CDB), so a controller knows what to collect */
  dataOutLength(cdb: Uint8Array): number;
  saveState(): unknown;
  loadState(state: unknown): void;
}
