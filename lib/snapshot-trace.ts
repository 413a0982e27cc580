// NODE_KVM_TRACE_SNAPSHOT=1: phase timings of snapshot capture and restore on stderr, for
// profiling restore-to-shell time (the bench forwards the variable into the nested lab). Off by
// default: then every call here is a no-op. Lines are held until flushSnapshotTrace() (or exit):
// inside the lab stderr can be a slow console, and a write there would land in the timing.
const enabled = process.env.NODE_KVM_TRACE_SNAPSHOT === '1';
const held: string[] = [];
if (enabled) process.on('exit', () => flushSnapshotTrace());

/** Add a line to the trace (no-op unless tracing). */
export function snapshotTrace(line: string): void {
  if (enabled) held.push(`[snapshot] ${line}\n`);
}

/** Write the held trace lines to stderr. */
export function flushSnapshotTrace(): void {
  if (held.length > 0) process.stderr.write(held.splice(0).join(''));
}

export interface PhaseTimer {
  /** The phase that just ended. */
  mark(name: string): void;
  /** Print the phases and the total. */
  done(): void;
}

const noop: PhaseTimer = { mark: () => undefined, done: () => undefined };

export function snapshotTraceEnabled(): boolean {
  return enabled;
}

export function phaseTimer(what: string): PhaseTimer {
  if (!enabled) return noop;
  const t0 = performance.now();
  let last = t0;
  const parts: string[] = [];
  return {
    mark(name) {
      const now = performance.now();
      parts.push(`${name} ${(now - last).toFixed(1)}`);
      last = now;
    },
    done() {
      snapshotTrace(`${what} ${(performance.now() - t0).toFixed(1)} ms: ${parts.join(', ')}`);
    },
  };
}
