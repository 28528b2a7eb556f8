/**
 * The VM's dedicated module Worker: exposes a VmApi (web/vm-api.ts) to the page through comlink. Byte
 * buffers going to the page (serial output, screen rectangles, snapshots) are transferred, not copied.
 */
import * as Comlink from 'comlink';
import { VmApi } from './vm-api';
import type { FrameUpdate, SnapshotFile, VmListener, VmStatus } from './protocol';

class WorkerVm extends VmApi {
  override setListener(listener: VmListener | null): void {
    if (!listener) {
      super.setListener(null);
      return;
    }
    super.setListener({
      onSerial: (bytes: Uint8Array) => listener.onSerial?.(Comlink.transfer(bytes, [bytes.buffer as ArrayBuffer])),
      onStatus: (status: VmStatus) => listener.onStatus?.(status),
      onFrame: (update: FrameUpdate) =>
        listener.onFrame?.(Comlink.transfer(update, update.rects.map((r) => r.pixels.buffer as ArrayBuffer))),
    });
  }

  override async saveSnapshot(): Promise<SnapshotFile> {
    const file = await super.saveSnapshot();
    return Comlink.transfer(file, [file.bytes.buffer as ArrayBuffer]);
  }
}

Comlink.expose(new WorkerVm());
