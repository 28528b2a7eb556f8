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

/** Clock.saveState(): the time base only (timers are callbacks: each device re-arms its own from its state) */
export interface ClockState {
  deterministic: boolean;
  /** guest time (ns) when saved */
  nowNs: number;
  /** deterministic mode: guest ns not accounted for by retired instructions (time skipped while halted) */
  guestBase: number;
  nsPerInstruction: number;
  maxNsPerInstruction: number;
}

export class Clock {
  readonly deterministic: boolean;
  /** guest ns per retired instruction in deterministic mode (1: a nominal 1 GHz CPU, like the TSC) */
  nsPerInstruction = 1;
  /** supplies the retired-instruction count (set by the machine) */
  instructions: () => number = () => 0;
  /** tells whether the CPU is halted, waiting for an interrupt (set by the machine) */
  idle: () => boolean = () => true;
  /** called when now() reaches a pending timer in real-time mode (the machine ends the CPU's slice) */
  onDue: () => void = () => {};
  /**
   * called when a timer is armed (the machine ends the CPU's slice when it falls due inside it, so that
   * deterministic timers fire at their deadline whatever the host's slicing: snapshots rely on that)
   */
  onArm: (deadline: number) => void = () => {};
  /** real-time mode: the most guest time one instruction may take while the CPU runs */
  maxNsPerInstruction = 20;
  private paceTime = 0;
  private paceInstr = 0;
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

  /**
   * current guest time in ns. Real-time mode follows the host's clock, with two guards that keep every
   * clock derived from now() consistent when the emulator cannot keep up:
   * - pacing: while the CPU runs, guest time advances at most maxNsPerInstruction per instruction (the
   *   host-clock lag beyond that is forgiven), so the guest always gets a realistic amount of work done
   *   between two timer ticks and never sees ticks pile up;
   * - no skipped timers: time never passes a timer that has not fired yet.
   * While the CPU is halted, time follows the host clock freely (the guest is waiting).
   */
  now(): number {
    if (this.deterministic) return this.guestBase + this.instructions() * this.nsPerInstruction;
    if (this.paused) return this.guestBase;
    let t = this.guestBase + (Clock.host() - this.hostBase);
    const instr = this.instructions();
    if (!this.idle()) {
      const paced = this.paceTime + (instr - this.paceInstr) * this.maxNsPerInstruction;
      if (t > paced) {
        this.hostBase += t - paced; // forgive the lag
        t = paced;
      }
    }
    if (t !== this.paceTime) {
      // credit for instructions accrues until host time moves (a browser's performance.now() moves in
      // steps of up to 100 µs: reading it between steps must not use up the credit)
      this.paceTime = t;
      this.paceInstr = instr;
    }
    if (this.timers.length) {
      const cap = this.timers[0].deadline;
      if (t > cap) {
        this.onDue(); // a timer is due: the machine stops the CPU's slice to fire it
        return cap;
      }
    }
    return t;
  }

  /** real-time mode: start or stop the clock (guest time does not advance while paused) */
  setRunning(running: boolean): void {
    if (this.deterministic) return;
    if (running === !this.paused) return;
    if (running) {
      this.hostBase = Clock.host();
      this.paused = false;
      this.paceTime = this.guestBase;
      this.paceInstr = this.instructions();
    } else {
      this.guestBase = this.now();
      this.paused = true;
    }
  }

  /** real-time mode: the clock is running (not paused); deterministic mode: always true */
  get running(): boolean {
    return this.deterministic || !this.paused;
  }

  /** the time base (stop the clock first in real-time mode, so that every device sees the same now()) */
  saveState(): ClockState {
    return {
      deterministic: this.deterministic,
      nowNs: this.now(),
      guestBase: this.guestBase,
      nsPerInstruction: this.nsPerInstruction,
      maxNsPerInstruction: this.maxNsPerInstruction,
    };
  }

  /**
   * Loads a saveState() image: guest time continues from the saved instant (deterministic mode: the
   * instruction count must be restored first). Every pending timer is dropped: the devices' loadState()
   * re-arms what was in flight. A real-time clock comes back paused; the host starts it with setRunning.
   */
  loadState(state: unknown): void {
    const s = state as ClockState;
    if (!!s.deterministic !== this.deterministic) {
      throw new Error(`the clock was saved in ${s.deterministic ? 'deterministic' : 'real-time'} mode`);
    }
    this.nsPerInstruction = s.nsPerInstruction;
    this.maxNsPerInstruction = s.maxNsPerInstruction;
    this.timers = [];
    this.paused = true;
    this.guestBase = this.deterministic ? s.guestBase : s.nowNs;
    this.paceTime = this.guestBase;
    this.paceInstr = this.instructions();
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
    this.onArm(deadline);
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
