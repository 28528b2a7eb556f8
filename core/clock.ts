/**
 * The machine's time base. Every guest-visible clock (TSC, PIT, RTC, APIC timer, ACPI PM timer) derives
 * from `now()` so they never disagree. Two modes:
 * - real time: guest nanoseconds follow the host's monotonic clock (performance.now), paused time excluded;
 * - deterministic: guest nanoseconds = instructions retired × nsPerInstruction, so a run is reproducible.
 * Timers are kept in a small array sorted by deadline; the machine runs the CPU up to the next deadline.
 */

export type TimerCallback = (nowNs: number) => void;

export interface Timer {
  id: number;
  deadline: number;
  cb: TimerCallback;
}

export class Clock {
  readonly deterministic: boolean;
  /** guest ns per retired instruction in deterministic mode */
  nsPerInstruction = 1;
  /** supplies the retired-instruction count (set by the machine) */
  instructions: () => number = () => 0;
  private hostBase = 0;
  private guestBase = 0;
  private paused = true;
  private timers: Timer[] = [];
  private nextId = 1;

  constructor(deterministic: boolean) {
    this.deterministic = deterministic;
  }

  private static host(): number {
    return performance.now() * 1e6;
  }

  /** current guest time in ns */
  now(): number {
    if (this.deterministic) return this.guestBase + this.instructions() * this.nsPerInstruction;
    if (this.paused) return this.guestBase;
    return this.guestBase + (Clock.host() - this.hostBase);
  }

  /** real-time mode: start or stop the clock (guest time does not advance while paused) */
  setRunning(running: boolean): void {
    if (this.deterministic) return;
    if (running === !this.paused) return;
    if (running) {
      this.hostBase = Clock.host();
      this.paused = false;
    } else {
      this.guestBase = this.now();
      this.paused = true;
    }
  }

  /** deterministic mode: lets guest time jump forward (the CPU is halted waiting for a timer) */
  advance(ns: number): void {
    if (ns > 0) this.guestBase += ns;
  }

  /** schedules cb at guest time `deadline` (ns); returns an id for cancel() */
  at(deadline: number, cb: TimerCallback): number {
    const t: Timer = { id: this.nextId++, deadline, cb };
    let i = this.timers.length;
    while (i > 0 && this.timers[i - 1].deadline > deadline) i--;
    this.timers.splice(i, 0, t);
    return t.id;
  }

  cancel(id: number): void {
    const i = this.timers.findIndex((t) => t.id === id);
    if (i >= 0) this.timers.splice(i, 1);
  }

  /** deadline of the earliest timer, or Infinity */
  nextDeadline(): number {
    return this.timers.length ? this.timers[0].deadline : Infinity;
  }

  /** runs every timer whose deadline has passed */
  runDue(): void {
    const now = this.now();
    while (this.timers.length && this.timers[0].deadline <= now) {
      const t = this.timers.shift()!;
      t.cb(now);
    }
  }
}
