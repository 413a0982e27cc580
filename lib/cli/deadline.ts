// A whole-command time limit (`--timeout`): every await of the command races it, so a slow
// load counts as much as a slow guest.
export class DeadlineError extends Error {
  constructor() {
    super('deadline passed');
  }
}

export class Deadline {
  private timer: NodeJS.Timeout | undefined;
  private readonly listeners: Array<() => void> = [];
  private expiredFlag = false;
  private rejectors = new Set<(e: Error) => void>();

  /** `seconds` undefined: never expires. */
  constructor(seconds: number | undefined) {
    if (seconds === undefined) return;
    this.timer = setTimeout(() => {
      this.expiredFlag = true;
      for (const r of this.rejectors) r(new DeadlineError());
      this.rejectors.clear();
      for (const l of this.listeners) l();
    }, seconds * 1000);
  }

  get expired(): boolean {
    return this.expiredFlag;
  }

  /** Call `fn` when the deadline passes (at once if it has). */
  onExpire(fn: () => void): void {
    if (this.expiredFlag) fn();
    else this.listeners.push(fn);
  }

  /**
   * `p`, or a DeadlineError once the deadline passes. What `p` still produces after that goes
   * to `late` (e.g. to close a machine that was created too late to be used).
   */
  race<T>(p: Promise<T>, late?: (v: T) => void): Promise<T> {
    if (this.expiredFlag) {
      void p.then((v) => late?.(v), () => {});
      return Promise.reject(new DeadlineError());
    }
    return new Promise<T>((resolve, reject) => {
      let lost = false;
      const onExpire = (e: Error): void => { lost = true; reject(e); };
      this.rejectors.add(onExpire);
      p.then((v) => {
        this.rejectors.delete(onExpire);
        if (lost) late?.(v);
        else resolve(v);
      }, (e: unknown) => {
        this.rejectors.delete(onExpire);
        if (!lost) reject(e);
      });
    });
  }

  clear(): void {
    clearTimeout(this.timer);
    this.rejectors.clear();
    this.listeners.length = 0;
  }
}
