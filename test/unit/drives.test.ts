/**
 * The drive options of `x86vm run`: --hda … --hdd, --cdrom and QEMU's --drive key=value lists, their
 * placement on the IDE channels and SCSI targets, and the one-line errors for wrong values.
 */
import { describe, expect, it } from 'vitest';
import { parseCommandLine, type RunOptions } from '../../node/options';
import { parseDrive, placeDrives } from '../../node/drives';

function opts(args: string[]): RunOptions {
  const c = parseCommandLine(['run', '--kernel', 'k', ...args]);
  if (c.command !== 'run') throw new Error('not a run command');
  return c.options;
}

describe('drive options', () => {
  it('maps --hdX and --cdrom to the IDE slots QEMU uses, in command-line order', () => {
    const d = opts(['--cdrom', 'cd.iso', '--hdb', 'b.vhd', '--hda', 'a.vdi']).drives;
    expect(d.map((x) => [x.file, x.interface, x.media, x.index, x.readOnly])).toEqual([
      ['cd.iso', 'ide', 'cdrom', 2, true],
      ['b.vhd', 'ide', 'disk', 1, false],
      ['a.vdi', 'ide', 'disk', 0, false],
    ]);
    expect(opts([]).drives).toEqual([]);
    expect(opts(['--snapshot']).snapshot).toBe(true);
  });

  it('parses --drive key=value lists (doubled commas inside file names)', () => {
    const d = parseDrive('file=my,,disk.img,if=virtio-blk,format=raw,readonly=on');
    expect(d).toMatchObject({ file: 'my,disk.img', interface: 'virtio-blk', media: 'disk', format: 'raw', readOnly: true, snapshot: false });
    expect(parseDrive('file=x.iso,if=virtio-scsi,media=cdrom,index=3')).toMatchObject({ media: 'cdrom', readOnly: true, index: 3 });
    expect(parseDrive('file=x,snapshot=on').snapshot).toBe(true);
    expect(parseDrive('file=x').interface).toBe('ide');
  });

  it('rejects wrong --drive values with a message naming the option and the fault', () => {
    const bad: [string, RegExp][] = [
      ['if=ide', /file=FILE is needed/],
      ['file=x,if=scsi', /if=scsi is not one of ide, virtio-blk, virtio-scsi/],
      ['file=x,media=tape', /media=tape is not disk or cdrom/],
      ['file=x,format=qcow2', /format=qcow2 is not one of raw, vhd, vdi, iso/],
      ['file=x,readonly=maybe', /readonly=maybe should be on or off/],
      ['file=x,index=4', /index=4 should be 0–3/],
      ['file=x,if=virtio-blk,index=1', /index= applies to if=ide and if=virtio-scsi/],
      ['file=x,cache=none', /unknown key 'cache'/],
      ['file=x,file=y', /'file' given twice/],
      ['file=x,if=virtio-blk,media=cdrom', /a CD-ROM needs if=ide or if=virtio-scsi/],
      ['file=x,junk', /'junk' is not key=value/],
    ];
    for (const [text, re] of bad) {
      expect(() => opts(['--drive', text]), text).toThrow(re);
      expect(() => opts(['--drive', text]), text).toThrow(new RegExp(`^--drive ${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `));
    }
  });

  it('gives unnumbered IDE drives the first free slot and refuses two drives in one slot', () => {
    const placed = placeDrives([parseDrive('file=a'), parseDrive('file=b,index=0'), parseDrive('file=c')]);
    expect(placed.map((d) => d.index)).toEqual([1, 0, 2]);
    expect(() => placeDrives(opts(['--hda', 'a', '--drive', 'file=b,index=0']).drives)).toThrow(
      /--drive file=b,index=0: that slot is already taken by --hda a/,
    );
    const five = ['a', 'b', 'c', 'd', 'e'].map((f) => parseDrive(`file=${f}`));
    expect(() => placeDrives(five)).toThrow(/no free ide slot left \(4 in all\)/);
    // virtio-scsi targets are numbered separately from IDE slots
    expect(placeDrives([parseDrive('file=a'), parseDrive('file=b,if=virtio-scsi')]).map((d) => d.index)).toEqual([0, 0]);
  });
});
