/**
 * Networking with the default Linux guest (images/default: ne2k-pci, virtio_net and busybox's ip, udhcpc,
 * ping, nc, wget, md5sum):
 * - two guests in two worker threads on one switch in the test's thread (NE2000), and two guests in two
 *   processes joined through an `x86vm switch` process over a Unix socket (virtio-net): static addresses,
 *   ping both ways, and a 1 MiB file of random bytes sent with nc whose md5sum matches on both sides,
 *   while a third port throws runts, oversize frames, random bytes and non-frames at the switch;
 * - the switch's pcap capture opens in tshark and shows the pings;
 * - a guest on user-mode networking gets its lease from the NAT's DHCP server (printed by udhcpc's script),
 *   pings the gateway, and fetches a page with wget from an HTTP server this test runs on loopback, by
 *   address and by the name the NAT's DNS answers; a port it was not allowed is refused.
 * Guests boot one pair at a time; each console is driven by waiting for markers the shell prints.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createConnection } from 'node:net';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { MessageChannel, Worker } from 'node:worker_threads';
import { build } from 'esbuild';
import { NetSwitch } from '../core/net';
import { messagePortNet } from '../node/net-worker';
import { parseNicOption } from '../node/nics';
import { runWithNics, type WorkerVmMessage } from '../node/net-vmhost';
import { removeDir, tempDir } from './helpers/diskimg';
import { expectDefaultGuest, INITRD, KERNEL, ROOT } from './helpers/guest';

const PROMPT = /x86vm:[^#\n]*# /;
const APPEND = 'console=ttyS0 quiet pci=nocrs';
const RUN_ARGS = ['run', '--kernel', KERNEL, '--initrd', INITRD, '--append', APPEND, '--timeout', '400', '--serial', 'stdio'];

let work = '';
let hostEntry = '';
let workerEntry = '';

beforeAll(async () => {
  expectDefaultGuest();
  work = tempDir('x86vm-net-');
  hostEntry = join(work, 'host.mjs');
  workerEntry = join(work, 'worker.mjs');
  const vmhost = join(ROOT, 'node', 'net-vmhost.ts');
  const common = { bundle: true, platform: 'node' as const, format: 'esm' as const, target: 'node20', logLevel: 'warning' as const };
  await build({
    ...common,
    stdin: { contents: `import { hostMain } from ${JSON.stringify(vmhost)}; hostMain(process.argv.slice(2)).then((c) => process.exit(c));`, resolveDir: ROOT, loader: 'ts' },
    outfile: hostEntry,
  });
  await build({
    ...common,
    stdin: { contents: `import { workerMain } from ${JSON.stringify(vmhost)}; workerMain();`, resolveDir: ROOT, loader: 'ts' },
    outfile: workerEntry,
  });
}, 60_000);

afterAll(() => {
  if (work) removeDir(work);
});

/** a guest's serial console: text out, keystrokes in */
class Console {
  out = '';
  private mark = 0;
  private waiters: (() => void)[] = [];
  constructor(
    readonly name: string,
    private readonly write: (text: string) => void,
  ) {}

  feed(text: string): void {
    this.out += text;
    for (const w of this.waiters.splice(0)) w();
  }

  /** waits until `re` matches the output after the last match; returns the match */
  async expect(re: RegExp, timeoutMs = 120_000): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const rest = this.out.slice(this.mark);
      const m = re.exec(rest);
      if (m) {
        this.mark += m.index + m[0].length;
        return m;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.name}: timed out waiting for ${re} in:\n${this.out.slice(-3000)}`);
      await new Promise<void>((res) => {
        const t = setTimeout(res, Math.min(left, 1000));
        this.waiters.push(() => {
          clearTimeout(t);
          res();
        });
      });
    }
  }

  /** runs a shell command and returns what it printed (between markers the shell itself prints) */
  async run(cmd: string, timeoutMs = 120_000): Promise<string> {
    const tag = `${Math.random().toString(36).slice(2, 8)}`;
    this.write(`echo @@B${'""'}${tag}; ${cmd}; echo @@E${'""'}${tag}\n`);
    const m = await this.expect(new RegExp(`@@B${tag}\\r?\\n([\\s\\S]*?)@@E${tag}\\r?\\n`), timeoutMs);
    await this.expect(PROMPT, 30_000);
    return m[1].replace(/\r/g, '');
  }
}

/** the guest-to-guest script: addresses, pings, 1 MiB with nc, md5sums */
async function guestPair(a: Console, b: Console): Promise<void> {
  await Promise.all([a.expect(PROMPT, 300_000), b.expect(PROMPT, 300_000)]);
  const [ia, ib] = await Promise.all([
    a.run('ip link set eth0 up && ip addr add 10.0.9.1/24 dev eth0 && ip -o addr show eth0'),
    b.run('ip link set eth0 up && ip addr add 10.0.9.2/24 dev eth0 && ip -o addr show eth0'),
  ]);
  expect(ia).toMatch(/inet 10\.0\.9\.1\/24/);
  expect(ib).toMatch(/inet 10\.0\.9\.2\/24/);
  const pingAB = await a.run('ping -c 3 -W 5 10.0.9.2');
  expect(pingAB).toMatch(/3 packets transmitted, 3 packets received, 0% packet loss/);
  const pingBA = await b.run('ping -c 2 -W 5 10.0.9.1');
  expect(pingBA).toMatch(/2 packets transmitted, 2 packets received/);
  // 1 MiB of random bytes from A to B
  const sumA = await a.run('dd if=/dev/urandom of=/tmp/f bs=1024 count=1024 2>/dev/null; md5sum /tmp/f');
  const want = /^([0-9a-f]{32})\s/m.exec(sumA)?.[1];
  expect(want, sumA).toBeDefined();
  // the listener's stdin is a pipe that stays open: busybox nc quits when its stdin ends
  await b.run('(sleep 600 | nc -l -p 5000 > /tmp/g &) ; sleep 1');
  const sent = await a.run('time nc 10.0.9.2 5000 < /tmp/f && echo sent', 300_000);
  expect(sent).toMatch(/sent/);
  const got = await b.run('n=0; while [ "$(wc -c < /tmp/g)" -lt 1048576 ] && [ $n -lt 60 ]; do sleep 1; n=$((n+1)); done; wc -c < /tmp/g; md5sum /tmp/g', 120_000);
  expect(got).toMatch(/^1048576$/m);
  expect(/^([0-9a-f]{32})\s/m.exec(got)?.[1]).toBe(want);
}

/** frames no switch should forward or choke on: runts, oversize, random bytes, non-frames */
function malformedFrames(): unknown[] {
  const rnd = (n: number): Uint8Array => {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = Math.floor(Math.random() * 256);
    return b;
  };
  const out: unknown[] = [new Uint8Array(0), rnd(1), rnd(13), rnd(1519), rnd(9000), 'a string', { frame: 1 }, 42, null];
  for (let i = 0; i < 40; i++) {
    // random bytes of a valid length, broadcast so both guests see them, with a unicast source
    const f = rnd(14 + Math.floor(Math.random() * 1500));
    f.fill(0xff, 0, 6);
    f[6] &= 0xfe;
    out.push(f);
  }
  return out;
}

function tsharkIcmp(file: string): string[] {
  const text = execFileSync('tshark', ['-r', file, '-Y', 'icmp', '-T', 'fields', '-e', 'ip.src', '-e', 'ip.dst', '-e', 'icmp.type'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  }).toString();
  return text.split('\n').filter((l) => l.trim() !== '');
}

describe('networking with the default guest', () => {
  it('two guests in worker threads on one switch (NE2000): ping, 1 MiB over nc with matching md5sum, malformed frames ignored', async () => {
    const sw = new NetSwitch();
    const captured: Uint8Array[] = [];
    sw.addCapture((f, p) => {
      if (f[12] === 0x08 && f[13] === 0x00 && f[23] === 1) {
        captured.push(f.slice());
        if (process.env.X86VM_NET_DEBUG) console.log(`switch: ${p.name} ICMP type ${f[34]} seq ${(f[40] << 8) | f[41]} at ${Date.now() % 100000}`);
      }
    });
    const workers: Worker[] = [];
    const consoles: Console[] = [];
    const exits: Promise<{ code: number; message?: string }>[] = [];
    for (const [i, mac] of ['52:54:00:00:01:01', '52:54:00:00:01:02'].entries()) {
      const ch = new MessageChannel();
      sw.connect(messagePortNet(ch.port1), `worker${i}`);
      const w = new Worker(workerEntry, { workerData: { argv: RUN_ARGS, port: ch.port2, model: 'ne2k', mac }, transferList: [ch.port2] });
      const c = new Console(`guest${i}`, (text) => w.postMessage({ type: 'input', data: text } satisfies WorkerVmMessage));
      exits.push(
        new Promise((res) => {
          w.on('message', (m: WorkerVmMessage) => {
            if (m.type === 'out') c.feed(Buffer.from(m.data).toString('latin1'));
            else if (m.type === 'exit') {
              if (m.code !== 0 || process.env.X86VM_NET_DEBUG) console.log(`guest${i} NIC counters`, m.counters);
              res({ code: m.code, message: m.message });
            }
          });
          w.on('error', (e) => res({ code: -1, message: String(e) }));
        }),
      );
      workers.push(w);
      consoles.push(c);
    }
    // a third port throws garbage at the switch while the guests boot and talk
    const junkChannel = new MessageChannel();
    const junk = junkChannel.port2;
    const junkLink = messagePortNet(junkChannel.port1);
    const junkFar = sw.connect(junkLink, 'junk');
    const junkTimer = setInterval(() => {
      for (const f of malformedFrames()) junk.postMessage(f);
    }, 2000);
    try {
      await guestPair(consoles[0], consoles[1]);
    } catch (e) {
      // what the cards and interrupt controllers were doing, for the failure report
      for (const [i, w] of workers.entries()) {
        const dump = await new Promise((res) => {
          w.on('message', (m: WorkerVmMessage) => m.type === 'debug' && res(m.state));
          w.postMessage({ type: 'debug' } satisfies WorkerVmMessage);
          setTimeout(() => res('no answer'), 5000);
        });
        console.log(`guest${i}:`, JSON.stringify(dump));
      }
      throw e;
    } finally {
      clearInterval(junkTimer);
    }
    expect(junkFar.dropped).toBeGreaterThan(0);
    expect(sw.stats.runts).toBeGreaterThan(0);
    expect(sw.stats.oversize).toBeGreaterThan(0);
    expect(junkLink.stats.garbage).toBeGreaterThan(0); // non-frames stop at the MessagePort transport
    expect(sw.lookup(Uint8Array.of(0x52, 0x54, 0, 0, 1, 1))?.name).toBe('worker0');
    expect(sw.lookup(Uint8Array.of(0x52, 0x54, 0, 0, 1, 2))?.name).toBe('worker1');
    expect(captured.length).toBeGreaterThanOrEqual(10); // the ICMP echoes crossed the switch
    for (const w of workers) w.postMessage({ type: 'input', data: 'poweroff -f\n' } satisfies WorkerVmMessage);
    const results = await Promise.all(exits);
    for (const r of results) expect(r.code, r.message).toBe(0);
    junk.close();
    sw.close();
  }, 900_000);

  it('two guests as processes on an `x86vm switch` over a Unix socket (virtio-net): ping, 1 MiB over nc, pcap in tshark', async () => {
    const sock = join(work, 'switch.sock');
    const pcap = join(work, 'switch.pcap');
    const swProc = spawn(process.execPath, [hostEntry, 'switch', '--listen', `unix:${sock}`, '--pcap', pcap], { stdio: ['ignore', 'pipe', 'pipe'] });
    let swErr = '';
    swProc.stderr!.setEncoding('utf8').on('data', (d: string) => (swErr += d));
    const swExit = new Promise<number | null>((res) => swProc.on('close', (c) => res(c)));
    for (let i = 0; i < 100 && !swErr.includes('listening'); i++) await new Promise((r) => setTimeout(r, 100));
    expect(swErr).toMatch(/listening on unix:/);

    const procs: ChildProcess[] = [];
    const consoles: Console[] = [];
    const exits: Promise<number | null>[] = [];
    for (const i of [0, 1]) {
      const p = spawn(process.execPath, [hostEntry, ...RUN_ARGS, '--nic', `model=virtio,switch=unix:${sock}`], { stdio: ['pipe', 'pipe', 'pipe'] });
      const c = new Console(`proc${i}`, (text) => p.stdin!.write(text));
      p.stdout!.setEncoding('latin1').on('data', (d: string) => c.feed(d));
      let err = '';
      p.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
      exits.push(new Promise((res) => p.on('close', (code) => res(code))));
      procs.push(p);
      consoles.push(c);
      void err;
    }
    // a raw client speaking the socket framing badly: runts, oversize, then a length no frame has
    const bad = createConnection(sock);
    await new Promise<void>((res) => bad.once('connect', () => res()));
    const rec = (len: number, fill: number): Buffer => {
      const b = Buffer.alloc(4 + len, fill);
      b.writeUInt32BE(len, 0);
      return b;
    };
    bad.write(Buffer.concat([rec(0, 0), rec(5, 1), rec(2000, 2), rec(1600, 0xff)]));
    try {
      await guestPair(consoles[0], consoles[1]);
    } finally {
      bad.write(Buffer.from([0x7f, 0xff, 0xff, 0xff, 1, 2, 3]));
      bad.destroy();
    }
    for (const p of procs) p.stdin!.write('poweroff -f\n');
    const codes = await Promise.all(exits);
    expect(codes).toEqual([0, 0]);
    swProc.kill('SIGTERM');
    expect(await swExit).toBe(0);
    expect(swErr).toMatch(/stopped by SIGTERM: \d+ frames .* dropped [1-9]\d* runts, [1-9]\d* oversize/);
    const icmp = tsharkIcmp(pcap);
    expect(icmp).toContain('10.0.9.1\t10.0.9.2\t8');
    expect(icmp).toContain('10.0.9.2\t10.0.9.1\t0');
    expect(icmp).toContain('10.0.9.2\t10.0.9.1\t8');
    expect(icmp.length).toBeGreaterThanOrEqual(10);
  }, 900_000);

  it('user-mode networking: DHCP lease, ping the gateway, wget from a loopback HTTP server by address and name, other ports refused', async () => {
    const page = `page ${Math.random().toString(36).slice(2)}`;
    const server = createServer((req, res) => res.end(`${page} ${req.url}\n`));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as { port: number }).port;
    const c = new Console('user', (text) => vm?.input(new TextEncoder().encode(text)));
    let vm: { input(b: Uint8Array): void } | null = null;
    const run = runWithNics(RUN_ARGS, [parseNicOption(`model=virtio,user,allow=tcp:${port}`)], {
      stdout: (b) => c.feed(Buffer.from(b).toString('latin1')),
      onReady: (v) => {
        vm = v;
      },
    });
    try {
      await c.expect(PROMPT, 300_000);
      await c.run(
        `printf '#!/bin/sh\\ncase "$1" in bound) ifconfig $interface $ip netmask $subnet; route add default gw $router; echo "nameserver $dns" > /etc/resolv.conf; echo "LEASE ip=$ip mask=$subnet router=$router dns=$dns lease=$lease";; esac\\n' > /tmp/dhcp.sh; chmod +x /tmp/dhcp.sh`,
      );
      const lease = await c.run('ip link set eth0 up; udhcpc -q -n -t 5 -i eth0 -s /tmp/dhcp.sh');
      expect(lease).toMatch(/LEASE ip=10\.0\.2\.15 mask=255\.255\.255\.0 router=10\.0\.2\.2 dns=10\.0\.2\.3 lease=86400/);
      expect(await c.run('ping -c 2 -W 5 10.0.2.2')).toMatch(/2 packets received/);
      expect(await c.run(`wget -q -O - http://10.0.2.2:${port}/by-address`)).toContain(`${page} /by-address`);
      expect(await c.run(`wget -q -O - http://host:${port}/by-name`)).toContain(`${page} /by-name`);
      // a port nobody allowed: the NAT answers with a reset at once
      expect(await c.run(`wget -q -O - http://10.0.2.2:${port === 65535 ? 1 : port + 1}/ 2>&1; echo status=$?`)).toMatch(/Connection refused[\s\S]*status=1/);
      c.run('poweroff -f').catch(() => {});
      const r = await run;
      expect(r.exitCode, r.message).toBe(0);
    } finally {
      server.close();
    }
  }, 600_000);
});
