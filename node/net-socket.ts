/**
 * Frames over a stream socket between processes on this machine: a Unix socket or TCP on loopback.
 * Each frame is sent as a 4-byte big-endian length and the frame's bytes (the framing of QEMU's "stream"
 * and "socket" netdevs). A length under 14 is a runt and one over 1518 oversize: the record is read and
 * handed on for the receiver to drop (the switch counts them), and the stream goes on. A length over MAX_RECORD cannot be a frame of any kind: the stream is
 * out of step, so the connection is closed.
 *
 * listenSwitch() serves a NetSwitch: every connection becomes a switch port. connectSocketPort() is the
 * client side, what `x86vm run --nic …,switch=ADDR` uses. Addresses: `unix:/path/to/socket` or
 * `tcp:127.0.0.1:PORT` (also `tcp:localhost:PORT`, `tcp:[::1]:PORT`): only loopback, so a switch is never
 * reachable from the network.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { existsSync, lstatSync, unlinkSync } from 'node:fs';
import { ETH_HEADER, ETH_MAX_TAGGED, type FrameHandler, type NetPort, type NetSwitch } from '../core/net';

/** the largest length field accepted as a (possibly oversize, dropped) frame */
export const MAX_RECORD = 65536;
/** frames queued on a socket beyond this many bytes are dropped (a stalled peer must not eat memory) */
export const MAX_QUEUED_BYTES = 4 << 20;

export type NetAddress = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

export class NetAddressError extends Error {}

/** parses `unix:PATH` or `tcp:HOST:PORT` (HOST a loopback address) */
export function parseNetAddress(text: string): NetAddress {
  if (text.startsWith('unix:')) {
    const path = text.slice(5);
    if (!path) throw new NetAddressError(`'${text}': unix: needs a socket path`);
    return { kind: 'unix', path };
  }
  if (text.startsWith('tcp:')) {
    const rest = text.slice(4);
    const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(rest);
    if (!m) throw new NetAddressError(`'${text}': expected tcp:127.0.0.1:PORT`);
    const host = m[1] ?? m[2];
    const port = Number(m[3]);
    if (!(port >= 1 && port <= 65535)) throw new NetAddressError(`'${text}': port ${m[3]} is not 1–65535`);
    if (!/^(127\.\d+\.\d+\.\d+|localhost|::1)$/.test(host)) {
      throw new NetAddressError(`'${text}': only loopback addresses (127.0.0.1, localhost, ::1) are allowed`);
    }
    return { kind: 'tcp', host, port };
  }
  throw new NetAddressError(`'${text}' is not an address: use unix:/path or tcp:127.0.0.1:PORT`);
}

export function formatNetAddress(a: NetAddress): string {
  return a.kind === 'unix' ? `unix:${a.path}` : `tcp:${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
}

export interface SocketPortStats {
  runts: number;
  oversize: number;
  /** frames dropped because the peer did not read */
  dropped: number;
}

/** a NetPort over a connected stream socket, with length-prefixed framing */
export function socketPort(sock: Socket): NetPort & { stats: SocketPortStats; readonly closed: boolean } {
  let handler: FrameHandler | null = null;
  let closeHandler: (() => void) | null = null;
  let closed = false;
  const stats: SocketPortStats = { runts: 0, oversize: 0, dropped: 0 };
  let pending: Buffer | null = null;
  sock.setNoDelay(true);
  const finish = (): void => {
    if (closed) return;
    closed = true;
    sock.destroy();
    closeHandler?.();
  };
  sock.on('data', (chunk: Buffer) => {
    if (closed) return;
    let buf = pending ? Buffer.concat([pending, chunk]) : chunk;
    pending = null;
    let off = 0;
    while (buf.length - off >= 4) {
      const len = buf.readUInt32BE(off);
      if (len > MAX_RECORD) {
        // out of step: nothing after this can be trusted
        finish();
        return;
      }
      if (buf.length - off - 4 < len) break;
      const frame = buf.subarray(off + 4, off + 4 + len);
      off += 4 + len;
      // runts and oversize frames are counted here and handed on: the switch (or NIC) drops them
      if (len < ETH_HEADER) stats.runts++;
      else if (len > ETH_MAX_TAGGED) stats.oversize++;
      handler?.(new Uint8Array(frame.buffer, frame.byteOffset, frame.length).slice());
      if (closed) return;
    }
    if (off < buf.length) pending = Buffer.from(buf.subarray(off));
  });
  sock.on('error', () => finish());
  sock.on('close', () => finish());
  return {
    stats,
    get closed() {
      return closed;
    },
    send(frame: Uint8Array): void {
      if (closed) return;
      if (sock.writableLength > MAX_QUEUED_BYTES) {
        stats.dropped++;
        return;
      }
      const rec = Buffer.allocUnsafe(4 + frame.length);
      rec.writeUInt32BE(frame.length, 0);
      rec.set(frame, 4);
      sock.write(rec);
    },
    onFrame(h: FrameHandler): void {
      handler = h;
    },
    onClose(h: () => void): void {
      closeHandler = h;
    },
    close(): void {
      if (closed) return;
      closed = true;
      sock.end();
      sock.destroy();
    },
  };
}

function describeSocketError(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  switch (err?.code) {
    case 'ENOENT':
      return 'no such socket (is `x86vm switch` running?)';
    case 'ECONNREFUSED':
      return 'connection refused (is `x86vm switch` running?)';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EADDRINUSE':
      return 'the address is in use';
    default:
      return err?.message ?? String(e);
  }
}

/** connects to a switch; rejects with a one-line message naming the address */
export function connectSocketPort(address: NetAddress | string): Promise<NetPort & { stats: SocketPortStats }> {
  const a = typeof address === 'string' ? parseNetAddress(address) : address;
  return new Promise((resolve, reject) => {
    const sock = a.kind === 'unix' ? connect(a.path) : connect(a.port, a.host);
    const onError = (e: unknown): void => {
      sock.destroy();
      reject(new NetAddressError(`cannot connect to switch ${formatNetAddress(a)}: ${describeSocketError(e)}`));
    };
    sock.once('error', onError);
    sock.once('connect', () => {
      sock.off('error', onError);
      resolve(socketPort(sock));
    });
  });
}

export interface SwitchServer {
  readonly address: NetAddress;
  /** stops listening and disconnects every client */
  close(): Promise<void>;
}

function listenOn(server: Server, a: NetAddress): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: unknown): void => reject(e);
    server.once('error', onError);
    const done = (): void => {
      server.off('error', onError);
      resolve();
    };
    if (a.kind === 'unix') server.listen(a.path, done);
    else server.listen(a.port, a.host, done);
  });
}

/** is a Unix socket path held by a live listener? */
function socketAlive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * Serves `sw` on an address: each connection is a port of the switch. A stale Unix socket file (no
 * listener behind it) is replaced; a live one is an error. Rejects with a one-line message.
 */
export async function listenSwitch(address: NetAddress | string, sw: NetSwitch): Promise<SwitchServer> {
  const a = typeof address === 'string' ? parseNetAddress(address) : address;
  const sockets = new Set<Socket>();
  const server = createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    const name = a.kind === 'unix' ? `unix#${sockets.size}` : `${sock.remoteAddress}:${sock.remotePort}`;
    sw.connect(socketPort(sock), name);
  });
  try {
    await listenOn(server, a);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (a.kind === 'unix' && code === 'EADDRINUSE' && existsSync(a.path) && lstatSync(a.path).isSocket() && !(await socketAlive(a.path))) {
      unlinkSync(a.path);
      try {
        await listenOn(server, a);
      } catch (e2) {
        throw new NetAddressError(`cannot listen on ${formatNetAddress(a)}: ${describeSocketError(e2)}`);
      }
    } else {
      throw new NetAddressError(`cannot listen on ${formatNetAddress(a)}: ${describeSocketError(e)}`);
    }
  }
  return {
    address: a,
    close(): Promise<void> {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) =>
        server.close(() => {
          if (a.kind === 'unix') {
            try {
              unlinkSync(a.path);
            } catch {
              // already gone
            }
          }
          resolve();
        }),
      );
    },
  };
}
