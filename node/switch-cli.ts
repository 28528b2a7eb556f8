/**
 * `x86vm switch --listen unix:/path | tcp:127.0.0.1:PORT [--pcap FILE] [--aging SECONDS]`: a standalone
 * learning Ethernet switch (core/net.ts) that `x86vm run --nic model=…,switch=ADDR` processes join over a
 * Unix or loopback TCP socket (node/net-socket.ts framing). Runs until SIGINT/SIGTERM/SIGHUP; --pcap
 * writes every frame the switch accepts to a capture file tshark/Wireshark read.
 */
import { parseArgs } from 'node:util';
import { NetSwitch } from '../core/net';
import { listenSwitch, NetAddressError, formatNetAddress, type SwitchServer } from './net-socket';
import { PcapFile, PcapFileError } from './net-pcap';

export const SWITCH_HELP = `Usage: x86vm switch --listen ADDR [--pcap FILE] [--aging SECONDS]

A virtual Ethernet switch that VMs join with  x86vm run --nic model=ne2k|virtio,switch=ADDR

  --listen ADDR     unix:/path/to/socket, or tcp:127.0.0.1:PORT (loopback only)
  --pcap FILE       write every frame the switch forwards to FILE (pcap, for tshark/Wireshark)
  --aging SECONDS   forget a MAC address after this long without traffic from it (default 300)
  -h, --help        show this help

Runs until interrupted (Ctrl-C, SIGTERM).
`;

export interface RunningSwitch {
  readonly sw: NetSwitch;
  readonly server: SwitchServer;
  readonly pcap: PcapFile | null;
  close(): Promise<void>;
}

/** starts a switch serving `listen`, optionally capturing to `pcap` */
export async function startSwitch(options: { listen: string; pcap?: string; agingMs?: number }): Promise<RunningSwitch> {
  const sw = new NetSwitch({ agingMs: options.agingMs });
  const pcap = options.pcap !== undefined ? new PcapFile(options.pcap) : null;
  if (pcap) sw.addCapture((frame) => pcap.add(frame));
  let server: SwitchServer;
  try {
    server = await listenSwitch(options.listen, sw);
  } catch (e) {
    pcap?.close();
    throw e;
  }
  return {
    sw,
    server,
    pcap,
    async close() {
      await server.close();
      sw.close();
      pcap?.close();
    },
  };
}

/** the `x86vm switch` command; resolves with the exit status */
export async function switchMain(argv: string[], log: (line: string) => void = (l) => void process.stderr.write(`${l}\n`)): Promise<number> {
  let values: { listen?: string; pcap?: string; aging?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { listen: { type: 'string' }, pcap: { type: 'string' }, aging: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    log(`x86vm switch: ${(e as Error).message}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(SWITCH_HELP);
    return 0;
  }
  if (!values.listen) {
    log('x86vm switch: --listen unix:/path or tcp:127.0.0.1:PORT is needed');
    return 2;
  }
  let agingMs: number | undefined;
  if (values.aging !== undefined) {
    const s = Number(values.aging);
    if (!(s > 0 && s <= 1e6)) {
      log(`x86vm switch: --aging ${values.aging}: expected a number of seconds`);
      return 2;
    }
    agingMs = s * 1000;
  }
  let running: RunningSwitch;
  try {
    running = await startSwitch({ listen: values.listen, pcap: values.pcap, agingMs });
  } catch (e) {
    if (e instanceof NetAddressError || e instanceof PcapFileError) {
      log(`x86vm switch: ${e.message}`);
      return 2;
    }
    throw e;
  }
  log(`x86vm switch: listening on ${formatNetAddress(running.server.address)}${running.pcap ? `, capturing to ${running.pcap.path}` : ''}`);
  const signal = await new Promise<string>((resolve) => {
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(s, () => resolve(s));
  });
  await running.close();
  const st = running.sw.stats;
  log(
    `x86vm switch: stopped by ${signal}: ${st.frames} frames (${st.forwarded} forwarded, ${st.flooded} flooded), ` +
      `dropped ${st.runts} runts, ${st.oversize} oversize, ${st.garbage} malformed`,
  );
  if (running.pcap?.error) {
    log(`x86vm switch: ${running.pcap.error}`);
    return 1;
  }
  return 0;
}
