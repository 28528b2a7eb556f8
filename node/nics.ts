/**
 * Network cards on the command line and in vm.json:
 *
 *   --nic model=ne2k|virtio[,mac=52:54:00:12:34:56][,link=up|down][,pcap=FILE]
 *         (,switch=unix:/path | ,switch=tcp:127.0.0.1:PORT
 *          | ,user[,allow=[tcp:|udp:][A.B.C.D:]PORT[-PORT]]…[,hostfwd=tcp:[127.0.0.1]:HOSTPORT-:GUESTPORT]…
 *                 [,dns=NAME:A.B.C.D]…)
 *
 * model=ne2k is the NE2000 PCI (RTL8029, devices/ne2000.ts), model=virtio virtio-net (devices/virtio-net.ts).
 * switch= joins an `x86vm switch` over its socket; user is the user-mode NAT (node/net-user.ts); with
 * neither, the card has no cable (link down for the guest's traffic). pcap= records the card's traffic,
 * both directions, to a capture file. Without mac=, the first card gets QEMU's 52:54:00:12:34:56 (the next
 * ones count up) when it is alone with the NAT or the run is --deterministic, and a random 52:54:00:xx:xx:xx
 * otherwise, so VMs joining one switch differ.
 *
 * parseNicOption() validates the text (UsageError, exit status 2). attachNics() plugs the cards into the PC
 * (call it from a createPc device factory) and connects their backends in the background: `ready`
 * settles once every switch is connected and every hostfwd port is bound, or rejects with a one-line
 * message naming the option. close() disconnects everything.
 */
import type { Pc } from '../core/pc';
import { defaultMac, parseMac, randomMac, type NetPort, type NetworkCard } from '../core/net';
import { addNe2000 } from '../devices/ne2000';
import { addVirtioNet } from '../devices/virtio-net';
import { UsageError } from './options';
import { connectSocketPort, parseNetAddress, NetAddressError, type NetAddress } from './net-socket';
import { UserNet, parseAllowRule, parseHostFwd, UserNetOptionError, type UserNetOptions } from './net-user';
import { ipFromString } from './net-proto';
import { PcapFile, PcapFileError } from './net-pcap';

export type NicModel = 'ne2k' | 'virtio';

export type NicBackend =
  | { kind: 'none' }
  | { kind: 'switch'; address: NetAddress; text: string }
  | { kind: 'user'; options: UserNetOptions }
  /** a cable end handed over by the program (worker threads, tests) */
  | { kind: 'port'; port: NetPort };

export interface NicSpec {
  model: NicModel;
  mac?: Uint8Array;
  backend: NicBackend;
  /** link state at power-on (default up) */
  link: boolean;
  /** capture file for this card's traffic */
  pcap?: string;
  /** PCI slot (default: the first free one) */
  slot?: number;
  /** the option as given, for messages */
  source: string;
}

const MODELS: Record<string, NicModel> = {
  ne2k: 'ne2k',
  ne2k_pci: 'ne2k',
  'ne2k-pci': 'ne2k',
  rtl8029: 'ne2k',
  virtio: 'virtio',
  'virtio-net': 'virtio',
  'virtio-net-pci': 'virtio',
};

/** parses the text of one --nic option */
export function parseNicOption(text: string): NicSpec {
  const source = `--nic ${text}`;
  const fail = (why: string): never => {
    throw new UsageError(`${source}: ${why}`);
  };
  let model: NicModel | undefined;
  let mac: Uint8Array | undefined;
  let link = true;
  let pcap: string | undefined;
  let slot: number | undefined;
  let sw: string | undefined;
  let user = false;
  const allow: UserNetOptions['allow'] = [];
  const hostfwd: UserNetOptions['hostfwd'] = [];
  const names: Record<string, number> = {};
  const seen = new Set<string>();
  for (const part of text.split(',')) {
    if (part === '') fail('an empty field');
    const eq = part.indexOf('=');
    const key = eq < 0 ? part : part.slice(0, eq);
    const value = eq < 0 ? undefined : part.slice(eq + 1);
    const repeatable = key === 'allow' || key === 'hostfwd' || key === 'dns';
    if (!repeatable && seen.has(key)) fail(`'${key}' given twice`);
    seen.add(key);
    const need = (): string => {
      if (value === undefined || value === '') fail(`${key}= needs a value`);
      return value!;
    };
    try {
      switch (key) {
        case 'model': {
          const m = MODELS[need().toLowerCase()];
          if (!m) fail(`model=${value} is not ne2k or virtio`);
          model = m;
          break;
        }
        case 'mac':
          mac = parseMac(need());
          break;
        case 'link':
          if (value !== 'up' && value !== 'down') fail(`link=${value ?? ''} is not up or down`);
          link = value === 'up';
          break;
        case 'pcap':
          pcap = need();
          break;
        case 'slot': {
          const n = Number(need());
          if (!(Number.isInteger(n) && n >= 2 && n <= 31)) fail(`slot=${value} is not a PCI slot 2–31`);
          slot = n;
          break;
        }
        case 'switch':
          sw = need();
          parseNetAddress(sw);
          break;
        case 'user':
          if (value !== undefined) fail("'user' takes no value");
          user = true;
          break;
        case 'allow':
          allow.push(parseAllowRule(need()));
          break;
        case 'hostfwd':
          hostfwd.push(parseHostFwd(need()));
          break;
        case 'dns': {
          const m = /^([A-Za-z0-9][A-Za-z0-9.-]*):(\d+\.\d+\.\d+\.\d+)$/.exec(need());
          const ip = m ? ipFromString(m[2]) : NaN;
          if (!m || Number.isNaN(ip)) fail(`dns=${value}: expected NAME:A.B.C.D`);
          names[m![1]] = ip;
          break;
        }
        default:
          fail(`unknown key '${key}' (known: model, mac, link, pcap, slot, switch, user, allow, hostfwd, dns)`);
      }
    } catch (e) {
      if (e instanceof UsageError) throw e;
      if (e instanceof RangeError || e instanceof NetAddressError || e instanceof UserNetOptionError) fail(e.message);
      throw e;
    }
  }
  if (!model) fail('model=ne2k or model=virtio is needed');
  if (sw !== undefined && user) fail('switch= and user exclude each other');
  if (!user && (allow.length || hostfwd.length || Object.keys(names).length)) fail('allow=, hostfwd= and dns= belong to user');
  let backend: NicBackend = { kind: 'none' };
  if (sw !== undefined) backend = { kind: 'switch', address: parseNetAddress(sw), text: sw };
  else if (user) backend = { kind: 'user', options: { allow, hostfwd, names } };
  return { model: model!, mac, backend, link, pcap, slot, source };
}

export interface AttachedNics {
  readonly pc: Pc;
  readonly cards: NetworkCard[];
  /** settles when every backend is connected; rejects with a one-line message */
  readonly ready: Promise<void>;
  /** called after frames were delivered into a card (the host's run loop wakes a sleeping guest) */
  setWake(wake: () => void): void;
  /** disconnects every backend and closes the capture files */
  close(): Promise<void>;
}

/** a cable end that records both directions to a capture file */
function capturePort(inner: NetPort, cap: PcapFile): NetPort {
  return {
    send(frame) {
      cap.add(frame);
      inner.send(frame);
    },
    onFrame(h) {
      inner.onFrame((frame) => {
        cap.add(frame);
        h(frame);
      });
    },
    onClose: inner.onClose ? (h) => inner.onClose!(h) : undefined,
    close() {
      inner.close();
    },
  };
}

/** a cable end that calls `wake()` after each delivery */
function wakingPort(inner: NetPort, wake: () => (() => void) | null): NetPort {
  return {
    send: (f) => inner.send(f),
    onFrame(h) {
      inner.onFrame((frame) => {
        h(frame);
        wake()?.();
      });
    },
    onClose: inner.onClose ? (h) => inner.onClose!(h) : undefined,
    close: () => inner.close(),
  };
}

/**
 * Adds the cards of `specs` to the PC's PCI bus (call from a createPc device factory, so that snapshots
 * find them) and connects their backends.
 */
export function attachNics(pc: Pc, specs: NicSpec[]): AttachedNics {
  const cards: NetworkCard[] = [];
  const closers: (() => void)[] = [];
  const waits: Promise<void>[] = [];
  let wake: (() => void) | null = null;
  const getWake = (): (() => void) | null => wake;
  specs.forEach((spec, i) => {
    const alone = spec.backend.kind === 'user' || spec.backend.kind === 'none';
    const mac = spec.mac ?? (alone || pc.options.deterministic ? defaultMac(i) : randomMac());
    const card: NetworkCard = spec.model === 'ne2k' ? addNe2000(pc, { mac, slot: spec.slot }) : addVirtioNet(pc, { mac, slot: spec.slot });
    card.setLink(spec.link);
    cards.push(card);
    let cap: PcapFile | null = null;
    if (spec.pcap !== undefined) {
      try {
        cap = new PcapFile(spec.pcap);
      } catch (e) {
        if (e instanceof PcapFileError) {
          waits.push(Promise.reject(new Error(`${spec.source}: ${e.message}`)));
          return;
        }
        throw e;
      }
      const c = cap;
      closers.push(() => c.close());
    }
    const plug = (port: NetPort): void => {
      let p = wakingPort(port, getWake);
      if (cap) p = capturePort(p, cap);
      card.attach(p);
      port.onClose?.(() => {
        card.attach(null);
        card.setLink(false);
      });
      closers.push(() => port.close());
    };
    const b = spec.backend;
    if (b.kind === 'port') plug(b.port);
    else if (b.kind === 'user') {
      const nat = new UserNet(b.options);
      plug(nat.port);
      waits.push(nat.ready.catch((e: Error) => Promise.reject(new Error(`${spec.source}: ${e.message}`))));
    } else if (b.kind === 'switch') {
      waits.push(
        connectSocketPort(b.address).then(
          (port) => {
            plug(port);
          },
          (e: Error) => Promise.reject(new Error(`${spec.source}: ${e.message}`)),
        ),
      );
    }
  });
  const ready = Promise.all(waits).then(() => undefined);
  ready.catch(() => {}); // the host awaits it; an unobserved rejection must not crash the process
  return {
    pc,
    cards,
    ready,
    setWake(w) {
      wake = w;
    },
    async close() {
      await Promise.allSettled(waits);
      for (const c of closers.splice(0)) {
        try {
          c();
        } catch {
          // already closed
        }
      }
    },
  };
}

/**
 * One entry of vm.json's "nics" array: either the --nic text ("model=virtio,user,allow=8080") or an
 * object {"model": "ne2k"|"virtio", "mac"?, "link"?: "up"|"down", "pcap"?, "slot"?, "switch"?: ADDR,
 * "user"?: true | {"allow"?: [..], "hostfwd"?: [..], "dns"?: [..]}}. `resolve` turns a path relative to
 * the vm.json into one the process can open (pcap files, unix: socket paths). Errors name `field`.
 */
export function parseNicConfig(value: unknown, field: string, resolve: (path: string) => string = (p) => p): NicSpec {
  const fail = (why: string): never => {
    throw new UsageError(`${field}: ${why}`);
  };
  let text: string;
  if (typeof value === 'string') text = value;
  else if (value && typeof value === 'object' && !Array.isArray(value)) {
    const o = value as Record<string, unknown>;
    const known = ['model', 'mac', 'link', 'pcap', 'slot', 'switch', 'user'];
    for (const k of Object.keys(o)) if (!known.includes(k)) fail(`unknown field '${k}' (known: ${known.join(', ')})`);
    const parts: string[] = [];
    const str = (k: string): string | undefined => {
      const v = o[k];
      if (v === undefined) return undefined;
      if (typeof v !== 'string' || v === '' || v.includes(',')) fail(`"${k}" must be a string without commas`);
      return v as string;
    };
    const model = str('model');
    if (model === undefined) fail('"model" is needed ("ne2k" or "virtio")');
    parts.push(`model=${model}`);
    for (const k of ['mac', 'link']) {
      const v = str(k);
      if (v !== undefined) parts.push(`${k}=${v}`);
    }
    const pcap = str('pcap');
    if (pcap !== undefined) parts.push(`pcap=${resolve(pcap)}`);
    if (o.slot !== undefined) {
      if (typeof o.slot !== 'number') fail('"slot" must be a number');
      parts.push(`slot=${o.slot}`);
    }
    const sw = str('switch');
    if (sw !== undefined) parts.push(`switch=${sw.startsWith('unix:') ? `unix:${resolve(sw.slice(5))}` : sw}`);
    const user = o.user;
    if (user === true) parts.push('user');
    else if (user && typeof user === 'object' && !Array.isArray(user)) {
      parts.push('user');
      const u = user as Record<string, unknown>;
      for (const k of Object.keys(u)) {
        if (k !== 'allow' && k !== 'hostfwd' && k !== 'dns') fail(`"user" has an unknown field '${k}' (known: allow, hostfwd, dns)`);
        const list = u[k];
        if (!Array.isArray(list) || list.some((x) => typeof x !== 'string' || x.includes(','))) fail(`"user.${k}" must be a list of strings`);
        for (const x of list as string[]) parts.push(`${k}=${x}`);
      }
    } else if (user !== undefined && user !== false) fail('"user" must be true or an object');
    text = parts.join(',');
  } else {
    return fail('expected a --nic string or an object with "model"');
  }
  try {
    return parseNicOption(text);
  } catch (e) {
    if (e instanceof UsageError) {
      const prefix = `--nic ${text}: `;
      fail(e.message.startsWith(prefix) ? e.message.slice(prefix.length) : e.message);
    }
    throw e;
  }
}
