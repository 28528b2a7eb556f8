/**
 * Completion of host I/O (disk reads and writes) at a guest time.
 *
 * A controller starts a host operation (a Promise from a disk/ BlockDevice) and calls completeIo() with
 * the guest latency it wants the operation to take. The completion callback runs at guest time
 * now + latency, from the machine's timer loop, never earlier:
 * - if the host has finished by then, the callback runs at exactly that guest time;
 * - if not, in deterministic mode the machine stops running (Machine.hostWait) until the host is done,
 *   so guest time does not move meanwhile and the run stays reproducible whatever the host's speed;
 *   in real-time mode the guest keeps running and the callback runs when the host finishes.
 * The callback gets the error if the host operation failed.
 */
import type { Machine } from './machine';

export type IoDone = (error: Error | null) => void;

/**
 * Runs `done` `latencyNs` guest nanoseconds from now, but not before `op` settles. Returns the timer id.
 * A device that is reset while an operation is in flight ignores the late completion (a generation
 * counter), since the host operation itself cannot be recalled.
 */
export function completeIo(machine: Machine, op: Promise<unknown>, latencyNs: number, done: IoDone): number {
  let settled = false;
  let error: Error | null = null;
  let dueWaiting = false;
  const finish = (): void => done(error);
  const tracked = op.then(
    () => {
      settled = true;
      if (dueWaiting) finish();
    },
    (e: unknown) => {
      settled = true;
      error = e instanceof Error ? e : new Error(String(e));
      if (dueWaiting) finish();
    },
  );
  const clock = machine.clock;
  const id = clock.at(clock.now() + Math.max(0, latencyNs), () => {
    if (settled) {
      finish();
      return;
    }
    dueWaiting = true;
    if (clock.deterministic) machine.waitForHost(tracked);
  });
  machine.trackIo(tracked);
  return id;
}
