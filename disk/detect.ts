/**
 * Image format detection from the contents, and opening an image of any format as a BlockDevice.
 *
 * Detection order: VHD (a "conectix" footer at the end of the file, 511 bytes from it, or the copy of a
 * dynamic disk's footer at offset 0), VDI (its pre-header signature), ISO 9660 ("CD001" at sector 16),
 * then formats we know but do not read (qcow, QED, VMDK, VHDX, Parallels: refused with a hint, never
 * taken for raw), and raw for everything else.
 */
import { DiskError, SECTOR_SIZE, type BlockDevice, type ByteStore, type StoreOpener } from './block';
import { openRaw } from './raw';
import { VHD_FOOTER_SIZE, openVhd, probeVhd } from './vhd';
import { probeVdi, openVdi } from './vdi';
import { probeIso, openIso } from './iso';
import { ascii } from './util';

/** the formats openImage reads */
export const IMAGE_FORMATS = ['raw', 'vhd', 'vdi', 'iso'] as const;

/** formats recognised only to be refused clearly, by their magic at offset 0 */
const FOREIGN: { magic: string; name: string }[] = [
  { magic: 'QFI\xfb', name: 'qcow' },
  { magic: 'QED\0', name: 'QED' },
  { magic: 'KDMV', name: 'VMDK' },
  { magic: '# Disk DescriptorFile', name: 'VMDK (descriptor)' },
  { magic: 'vhdxfile', name: 'VHDX' },
  { magic: 'WithoutFreeSpace', name: 'Parallels' },
  { magic: 'WithouFreSpacExt', name: 'Parallels' },
];

export interface OpenImageOptions {
  /** 'raw', 'vhd', 'vdi' or 'iso'; detected from the contents when absent */
  format?: string;
  readOnly?: boolean;
  /** open a differencing image's parent read-write (for `disk commit`); default read-only */
  parentWritable?: boolean;
  /**
   * files that may be a VDI differencing image's parent (VDI files do not name their parent); default:
   * the opener's listSiblings(name) when it has one (node/file-store.ts: the other .vdi files beside it)
   */
  parentCandidates?: string[];
}

/** a StoreOpener that can also list the images beside a file (the parent candidates of a VDI) */
interface SiblingLister {
  listSiblings(name: string): string[];
}

async function readHead(store: ByteStore): Promise<{ head: Uint8Array; tail: Uint8Array; tail511: Uint8Array }> {
  const size = store.size();
  const head = new Uint8Array(SECTOR_SIZE);
  const tail = new Uint8Array(VHD_FOOTER_SIZE);
  const tail511 = new Uint8Array(VHD_FOOTER_SIZE);
  await store.read(0, head);
  if (size >= VHD_FOOTER_SIZE) {
    await store.read(size - VHD_FOOTER_SIZE, tail);
    await store.read(size - 511, tail511);
  }
  return { head, tail, tail511 };
}

/** the text a VDI file starts with, so that a VDI with a damaged signature is reported as one */
function vdiText(head: Uint8Array): boolean {
  return /^<<< [^\n]{1,56}Disk Image >>>\n/.test(ascii(head, 0, 64));
}

function foreignFormat(head: Uint8Array): string | undefined {
  for (const f of FOREIGN) if (ascii(head, 0, f.magic.length) === f.magic) return f.name;
  return undefined;
}

/**
 * The image format of a file from its contents: 'vhd', 'vdi', 'iso', 'raw', or the name of a format
 * x86vm recognises but does not read ('qcow', 'VMDK', 'VHDX', …).
 */
export async function detectFormat(store: ByteStore): Promise<string> {
  const { head, tail, tail511 } = await readHead(store);
  if (store.size() >= VHD_FOOTER_SIZE && probeVhd(head, tail, tail511)) return 'vhd';
  if (probeVdi(head) || vdiText(head)) return 'vdi';
  if (await probeIso(store)) return 'iso';
  return foreignFormat(head) ?? 'raw';
}

/**
 * Opens `store` as a disk: the format given, or the one detected. A differencing image opens its parent
 * chain through `opener`. A damaged image is a DiskError naming the file and the fault, and nothing is
 * written to it. The caller keeps ownership of `store` if this fails (and should close it).
 */
export async function openImage(store: ByteStore, opener: StoreOpener, options: OpenImageOptions = {}): Promise<BlockDevice> {
  const readOnly = !!options.readOnly;
  let format = options.format;
  if (format === undefined) {
    format = await detectFormat(store);
  } else if (!(IMAGE_FORMATS as readonly string[]).includes(format)) {
    throw new DiskError(store.name, `unknown image format '${format}' (known: ${IMAGE_FORMATS.join(', ')})`);
  }
  switch (format) {
    case 'raw':
      return openRaw(store, { readOnly });
    case 'vhd':
      return openVhd(store, opener, {
        readOnly,
        parentWritable: options.parentWritable,
        openParent: (pstore, o) => openImage(pstore, opener, { readOnly: o.readOnly }),
      });
    case 'vdi': {
      const lister = opener as Partial<SiblingLister>;
      const parentCandidates =
        options.parentCandidates ?? (typeof lister.listSiblings === 'function' ? lister.listSiblings(store.name) : undefined);
      return openVdi(store, opener, { readOnly, parentCandidates });
    }
    case 'iso':
      return openIso(store);
    default:
      throw new DiskError(
        store.name,
        `this is a ${format} image, which x86vm does not read; convert it first, e.g. qemu-img convert -O vpc FILE FILE.vhd`,
      );
  }
}
