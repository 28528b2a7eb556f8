/**
 * Snapshots in the browser (worker side): the whole machine to bytes and back with core/snapshot.ts's
 * file format — the same file restores in Node (`x86vm run --restore F`) and here — compressed with the
 * platform's CompressionStream (raw deflate, byte-compatible with Node's zlib).
 *
 * What the page adds to core/snapshot.ts: the firmware image mapped outside RAM (when one was booted)
 * goes in as a ROM section, as the CLI does; on restore the machine is rebuilt from the snapshot's own
 * configuration with this host's serial console, plus a VGA when the snapshot's machine had one.
 * Machines with disks are refused: a snapshot names each disk image by its SHA-256 (core/snapshot.ts
 * DiskRef), which the page cannot compute for a disk it reads by HTTP ranges without downloading it
 * whole; a CLI snapshot holding disks is refused on restore for the same reason.
 */
import type { Pc } from '../core/pc';
import type { SerialSink } from '../core/host';
import type { Screen } from '../core/screen';
import { compressionStreamCompressor, createPcFromSnapshot, parseSnapshot, saveSnapshot, sectionBytes, type SnapshotRom } from '../core/snapshot';

export const available = true;

const compressor = compressionStreamCompressor();

/** what a restored snapshot gives back */
export interface Restored {
  pc: Pc;
  memSize: number;
  deterministic: boolean;
  /** the ROMs outside RAM it carried (kept for the next save) */
  roms: SnapshotRom[];
  /** what it was booted from, in the saving host's words */
  origin?: Record<string, string>;
  /** its display adapter, if it had one */
  screen: Screen | null;
}

export interface SaveWhat {
  roms: SnapshotRom[];
  /** disks attached (refused, see the file comment) */
  disks: number;
  origin: Record<string, string>;
}

export async function saveMachine(pc: Pc, what: SaveWhat): Promise<Uint8Array> {
  if (what.disks > 0) {
    throw new Error('snapshots of a machine with disks are not supported yet (the disks’ changes cannot be saved with it)');
  }
  return saveSnapshot({ pc, roms: what.roms, creator: 'x86vm web', origin: what.origin }, compressor);
}

/** rebuilds the machine a snapshot was taken on, with `serial` as its console; errors say what is wrong */
export async function restoreMachine(bytes: Uint8Array, serial: SerialSink): Promise<Restored> {
  const snap = parseSnapshot(bytes);
  const meta = snap.meta;
  if (meta.disks.length) throw new Error('it holds disks, which the page cannot restore yet');
  // the VGA, when the snapshot's machine had one, is rebuilt by createPcFromSnapshot
  const pc = await createPcFromSnapshot(snap, { serial }, compressor);
  const screen: Screen | null = pc.vga;
  const roms: SnapshotRom[] = [];
  for (const r of meta.roms) roms.push({ name: r.name, base: r.base, data: (await sectionBytes(snap, `rom:${r.name}`, compressor)).slice() });
  return { pc, memSize: meta.config.memSize, deterministic: meta.config.deterministic, roms, origin: meta.origin, screen };
}
