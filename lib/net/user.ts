// The `user` network backend (DESIGN §7c): the guest's network without root, carried by passt.
// Frames go both ways over a socketpair in QEMU's stream framing; passt gives the guest an
// address by DHCP, lets it reach anything this user can reach (the gateway address is this
// host's loopback), and forwards host ports into the guest.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { InvalidArgumentError, NodeKvmError } from '../errors.js';
import { BackendBase } from './backend.js';
import { boundPorts, DEFAULT_USER_ADDRESSING, findPasst, freePort, passtArgv, type ActiveForward, type UserAddressing, type UserForward } from './passt.js';
import { encodeStreamFrame, StreamFrameDecoder } from './stream-framing.js';

export type { ActiveForward, UserAddressing, UserForward } from './passt.js';

/** Options of userNet(). */
export interface UserNetOptions {
  /** Host ports forwarded into the guest. More can be added later with forward(). */
  forward?: UserForward[];
  /** The guest's address, gateway and DNS (default 10.0.2.15/24, gateway 10.0.2.2, DNS 10.0.2.3). */
  addressing?: Partial<UserAddressing>;
  /** Path of the passt binary (default: found on PATH). */
  passt?: string;
  /**
   * Bytes of frames the guest may have queued toward passt while passt does not read (default
   * 4 MiB); a frame beyond it is dropped and counted in stats.txDropped.
   */
  maxQueuedBytes?: number;
  /**
   * Bytes of frames from passt held while the NIC's receive ring is full (default 16 MiB, above
   * any receive window a guest's TCP opens); beyond it the backend stops reading passt's socket
   * and passt drops what it cannot send (stats.rxStalls counts those times).
   */
  maxHeldBytes?: number;
  /** How long passt may take to start and bind its forwards (default 10 s). */
  startTimeoutMs?: number;
  /** Have passt record the frames it exchanges with the guest to this pcap file (passt --pcap). */
  pcap?: string;
}

/** Counters of a UserNetBackend. */
export interface UserNetStats {
  /** Frames the guest sent toward passt. */
  txFrames: number;
  /** Their bytes. */
  txBytes: number;
  /** Frames dropped on the way to passt: not running, or too much already queued. */
  txDropped: number;
  /** Frames passt sent to the guest. */
  rxFrames: number;
  /** Their bytes. */
  rxBytes: number;
  /** Times passt was started (1 + a restart per forward() added after the first start). */
  starts: number;
  /** Most bytes of frames from passt held at once for a full receive ring. */
  rxHeldMaxBytes: number;
  /** Times the held frames passed maxHeldBytes and the backend stopped reading passt's socket. */
  rxStalls: number;
}

const EMPTY = new Uint8Array(0);

/** Called when passt ends on its own after it was ready. */
export type FailureListener = (error: NodeKvmError) => void;

function checkPort(v: unknown, what: string, min: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > 65535) {
    throw new InvalidArgumentError(`${what} must be an integer ${min}..65535 (got ${String(v)})`, 'ERR_INVALID_NET');
  }
  return v;
}

function checkForward(f: UserForward, i: number): UserForward {
  if (f === null || typeof f !== 'object') throw new InvalidArgumentError(`forward[${i}] must be { host?, guest, proto? }`, 'ERR_INVALID_NET');
  if (f.proto !== undefined && f.proto !== 'tcp' && f.proto !== 'udp') throw new InvalidArgumentError(`forward[${i}].proto must be 'tcp' or 'udp'`, 'ERR_INVALID_NET');
  checkPort(f.guest, `forward[${i}].guest`, 1);
  if (f.host !== undefined) checkPort(f.host, `forward[${i}].host`, 0);
  if (f.address !== undefined && !/^\d{1,3}(\.\d{1,3}){3}$/.test(f.address)) throw new InvalidArgumentError(`forward[${i}].address must be an IPv4 address`, 'ERR_INVALID_NET');
  return f;
}

/**
 * A NetBackend whose far end is a passt process. Start-up is asynchronous (free ports are
 * picked and passt binds them): `ready` settles when the forwards are listening, and
 * Machine.create waits for it. Frames the guest sends before that are queued (bounded).
 */
export class UserNetBackend extends BackendBase {
  /** Counters, updated as frames pass. */
  readonly stats: UserNetStats = { txFrames: 0, txBytes: 0, txDropped: 0, rxFrames: 0, rxBytes: 0, starts: 0, rxHeldMaxBytes: 0, rxStalls: 0 };
  /** Settles once passt runs with every forward bound; rejects with a coded error otherwise. */
  ready: Promise<void>;
  private readonly passtPath: string;
  private readonly addressing: UserAddressing;
  private readonly maxQueued: number;
  private readonly startTimeoutMs: number;
  private readonly pcap: string | undefined;
  private active: ActiveForward[] = [];
  private child: ChildProcess | undefined;
  private sock: Socket | undefined;
  private readonly queue: Buffer[] = [];
  private queuedBytes = 0;
  private paused = false;
  /** Frames from passt waiting for the NIC (from heldHead on), and their bytes. */
  private readonly held: Uint8Array[] = [];
  private heldHead = 0;
  private heldBytes = 0;
  private socketPaused = false;
  private readonly maxHeld: number;
  private readonly failure = new Set<FailureListener>();
  private exits: Array<Promise<void>> = [];
  private forwarding: Promise<unknown> = Promise.resolve();
  /** The guest's MAC and IPv4 address as its frames last gave them (for a restarted passt). */
  private readonly guestMac = new Uint8Array(6);
  private guestMacSeen = false;
  private guestIp: number[] | undefined;

  constructor(opts: UserNetOptions = {}) {
    super();
    const forwards = (opts.forward ?? []).map(checkForward);
    this.addressing = { ...DEFAULT_USER_ADDRESSING, ...opts.addressing };
    this.maxQueued = opts.maxQueuedBytes ?? 4 << 20;
    this.maxHeld = opts.maxHeldBytes ?? 16 << 20;
    this.startTimeoutMs = opts.startTimeoutMs ?? 10_000;
    this.pcap = opts.pcap;
    this.passtPath = findPasst(opts.passt);
    this.setLink(false);
    this.ready = this.start(forwards);
    // The caller may never await ready (a machine that closes first): keep the rejection handled.
    this.ready.catch(() => {});
  }

  /** The forwards in effect, with the host ports picked for those asked as 0. */
  get forwards(): readonly ActiveForward[] {
    return this.active;
  }

  /**
   * Forward a host port to `guestPort` from now on, and return the host port. passt takes its
   * forwards on its command line, so it is restarted with the longer list: the guest keeps its
   * address, but TCP connections passing through passt at that moment are reset.
   */
  async forward(guestPort: number, opts: { proto?: 'tcp' | 'udp'; host?: number; address?: string } = {}): Promise<number> {
    const f = checkForward({ ...opts, guest: guestPort }, this.active.length);
    await this.ready;
    // One restart at a time: each starts from the forwards the one before left in effect.
    const run = this.forwarding.then(async () => {
      if (this.closed) throw new NodeKvmError('ERR_NET_CLOSED', 'the user network backend is closed');
      const proto = f.proto ?? 'tcp';
      const existing = this.active.find((a) => a.proto === proto && a.guest === f.guest && (f.host === undefined || f.host === 0 || a.host === f.host));
      if (existing !== undefined) return existing.host;
      try {
        await this.start([...this.active, f]);
      } catch (e) {
        // A port found taken before the restart leaves the running passt alone; any later
        // failure has stopped it, and the guest has lost its network: say so as passt dying would.
        if (this.child === undefined && !this.closed) this.fail(e as NodeKvmError);
        throw e;
      }
      return this.active.find((a) => a.proto === proto && a.guest === f.guest)!.host;
    });
    this.forwarding = run.catch(() => {});
    return run;
  }

  /** Subscribe to passt ending on its own (the guest then sees carrier loss). */
  onFailure(listener: FailureListener): () => void {
    this.failure.add(listener);
    return () => { this.failure.delete(listener); };
  }

  send(frame: Uint8Array): void {
    if (this.closed) return;
    if (this.queuedBytes + frame.length + 4 > this.maxQueued) {
      this.stats.txDropped++;
      return;
    }
    this.learn(frame);
    const buf = encodeStreamFrame(withoutPadding(frame));
    this.stats.txFrames++;
    this.stats.txBytes += frame.length;
    const s = this.sock;
    if (s !== undefined && this.queue.length === 0 && s.writableLength + buf.length <= this.maxQueued) {
      s.write(buf);
      return;
    }
    this.queue.push(buf);
    this.queuedBytes += buf.length;
    if (s !== undefined && this.queue.length === 1) s.once('drain', () => this.flush());
  }

  /**
   * The NIC's ring is full: hold passt's frames here until resumeReceive(), reading on. The
   * socket is left flowing on purpose: passt sends with MSG_DONTWAIT and drops what does not
   * fit (2023.03: "dropped N frames due to short send"), and the guest's TCP then waits for
   * passt's 2 s retransmission timer; a socket paused for a full ring made transfers crawl.
   * Only beyond maxHeldBytes is the socket paused (stats.rxStalls).
   */
  pauseReceive(): void {
    this.paused = true;
  }

  /** Deliver the frames held since the pause (the NIC may pause again in between). */
  resumeReceive(): void {
    this.paused = false;
    const h = this.held;
    while (this.heldHead < h.length && !this.paused && !this.closed) {
      const f = h[this.heldHead]!;
      h[this.heldHead++] = EMPTY;
      this.heldBytes -= f.length;
      this.deliver(f);
    }
    if (this.heldHead === h.length) { h.length = 0; this.heldHead = 0; } else if (this.heldHead > 1024 && this.heldHead * 2 > h.length) { h.splice(0, this.heldHead); this.heldHead = 0; }
    if (this.socketPaused && this.heldBytes <= this.maxHeld / 2) {
      this.socketPaused = false;
      this.sock?.resume();
    }
  }

  /** A frame from passt: to the NIC, or held while the NIC has asked for a pause. */
  private receive(frame: Uint8Array): void {
    this.stats.rxFrames++;
    this.stats.rxBytes += frame.length;
    if (!this.paused && this.heldHead === this.held.length) {
      this.deliver(frame);
      return;
    }
    this.held.push(frame);
    this.heldBytes += frame.length;
    if (this.heldBytes > this.stats.rxHeldMaxBytes) this.stats.rxHeldMaxBytes = this.heldBytes;
    if (this.heldBytes > this.maxHeld && !this.socketPaused) {
      this.socketPaused = true;
      this.stats.rxStalls++;
      this.sock?.pause();
    }
  }

  /** Kill passt. Synchronous; `exited` settles once the process is gone. */
  override close(): void {
    if (this.closed) return;
    super.close();
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.held.length = 0;
    this.heldHead = 0;
    this.heldBytes = 0;
    this.stop();
  }

  /** Settles when every passt this backend started has exited (after close()). */
  get exited(): Promise<void> {
    return Promise.all(this.exits).then(() => undefined);
  }

  /** close() and wait until passt has exited. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.exited;
  }

  /** Note the guest's source MAC (and IPv4 address) when they change. */
  private learn(frame: Uint8Array): void {
    if (frame.length < 14) return;
    const m = this.guestMac;
    if (!this.guestMacSeen || frame[6] !== m[0] || frame[7] !== m[1] || frame[8] !== m[2] || frame[9] !== m[3] || frame[10] !== m[4] || frame[11] !== m[5]) {
      m.set(frame.subarray(6, 12));
      this.guestMacSeen = true;
    }
    // IPv4 source (not 0.0.0.0: DHCP before the lease).
    if (frame.length >= 34 && frame[12] === 0x08 && frame[13] === 0x00 && (frame[26]! | frame[27]! | frame[28]! | frame[29]!) !== 0) {
      const ip = this.guestIp;
      if (ip === undefined || ip[0] !== frame[26] || ip[1] !== frame[27] || ip[2] !== frame[28] || ip[3] !== frame[29]) this.guestIp = [...frame.subarray(26, 30)];
    }
  }

  private flush(): void {
    const s = this.sock;
    if (s === undefined || this.closed) return;
    while (this.queue.length > 0) {
      const b = this.queue.shift()!;
      this.queuedBytes -= b.length;
      if (!s.write(b)) {
        if (this.queue.length > 0) s.once('drain', () => this.flush());
        return;
      }
    }
  }

  private stop(): void {
    const c = this.child;
    this.child = undefined;
    this.sock?.removeAllListeners('data');
    this.sock?.destroy();
    this.sock = undefined;
    if (c !== undefined && c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }

  private fail(error: NodeKvmError): void {
    this.setLink(false);
    for (const l of this.failure) l(error);
  }

  private async start(wanted: readonly UserForward[]): Promise<void> {
    // One retry: a port picked as free may be taken by someone else before passt binds it.
    for (let attempt = 0; ; attempt++) {
      const active: ActiveForward[] = [];
      for (const f of wanted) {
        const proto = f.proto ?? 'tcp';
        const address = f.address ?? '127.0.0.1';
        active.push({ proto, address, guest: f.guest, host: f.host !== undefined && f.host !== 0 ? f.host : await freePort(proto, address) });
      }
      if (this.closed) throw new NodeKvmError('ERR_NET_CLOSED', 'the user network backend was closed while starting');
      try {
        await this.spawnPasst(active);
        this.active = active;
        return;
      } catch (e) {
        const picked = wanted.some((f) => f.host === undefined || f.host === 0);
        if (attempt === 0 && picked && (e as NodeKvmError).code === 'ERR_NET_PORT_IN_USE') continue;
        throw e;
      }
    }
  }

  private async spawnPasst(active: ActiveForward[]): Promise<void> {
    // Readiness is judged by the ports being bound, so a port someone else holds must be
    // refused here: passt would fail to bind it, but the port would look ready.
    for (const p of ['tcp', 'udp'] as const) {
      const bound = boundPorts(p);
      const taken = active.filter((f) => f.proto === p && bound.has(f.host) && !this.active.some((a) => a.proto === p && a.host === f.host));
      if (taken.length > 0) {
        throw new NodeKvmError('ERR_NET_PORT_IN_USE', `cannot forward host port ${taken.map((f) => `${p} ${f.address}:${f.host}`).join(', ')}: it is in use`);
      }
    }
    // A restart (forward() after start) keeps the guest's link up: frames it sends meanwhile are
    // queued (bounded) until the new passt runs.
    const old = this.child;
    this.stop();
    if (old === undefined) this.setLink(false);
    else {
      // The old passt holds the forwarded ports until it has exited: the new one binds them too.
      if (old.exitCode === null && old.signalCode === null) await new Promise((resolve) => old.once('exit', resolve));
      if (this.closed) throw new NodeKvmError('ERR_NET_CLOSED', 'the user network backend was closed while starting');
    }
    const child = spawn(this.passtPath, [...passtArgv(this.addressing, active), ...(this.pcap !== undefined ? ['--pcap', this.pcap] : [])], { stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.stats.starts++;
    this.exits.push(new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('close', () => resolve());
    }));
    let stderr = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => { stderr = (stderr + d).slice(-4096); });
    // The fourth stdio entry is one end of a socketpair (libuv makes stdio pipes that way).
    const sock = child.stdio[3] as Socket;
    this.sock = sock;
    const decoder = new StreamFrameDecoder(
      (frame) => this.receive(frame),
      (msg) => { this.fail(new NodeKvmError('ERR_NET_USER_PROTOCOL', `passt sent a broken stream: ${msg}`)); this.stop(); },
    );
    sock.on('data', (d: Buffer) => decoder.push(d));
    sock.on('error', () => { /* reported through the process's exit */ });
    if (this.socketPaused) sock.pause();
    // A new passt does not know the guest's MAC until a frame from the guest tells it (it sends to
    // 00:00:00:00:00:00 until then, which the NIC filters out), so a connection through a forward
    // added after boot would not reach an idle guest. Announce the guest to it, first on the
    // socket, the way a guest announces an address (a gratuitous ARP): passt learns the guest's
    // MAC from the source of any frame and discards announcements, so nothing else sees it.
    if (this.guestMacSeen) sock.write(encodeStreamFrame(arpAnnouncement(this.guestMac, this.guestIp ?? ipv4Bytes(this.addressing.address))));
    const tail = () => stderr.split('\n').filter((l) => l !== '' && !l.startsWith('Failed to send') && !l.includes('syslog')).slice(-6).join('\n');

    return new Promise<void>((resolve, reject) => {
      const deadline = Date.now() + this.startTimeoutMs;
      const onEarlyExit = (code: number | null, signal: NodeJS.Signals | null) => {
        clearTimeout(timer);
        this.setLink(false);
        if (this.closed || this.child !== child) {
          reject(new NodeKvmError('ERR_NET_CLOSED', 'the user network backend was closed while starting'));
          return;
        }
        const why = tail();
        const code_ = /Failed to bind|Address already in use/.test(why) ? 'ERR_NET_PORT_IN_USE' : 'ERR_NET_USER_START';
        const ports = active.map((f) => `${f.proto} ${f.address}:${f.host}`).join(', ');
        reject(new NodeKvmError(code_, code_ === 'ERR_NET_PORT_IN_USE'
          ? `passt could not bind a forwarded host port (${ports}): it is in use\n${why}`
          : `passt exited during start-up (${signal ?? `status ${code}`})${/routable interface|not usable/.test(why) ? ': passt needs a network interface with a default route on this host' : ''}\n${why}`));
      };
      child.once('exit', onEarlyExit);
      child.once('error', (e) => { clearTimeout(timer); reject(new NodeKvmError('ERR_NET_USER_START', `could not start passt: ${e.message}`)); });
      let timer: NodeJS.Timeout;
      const poll = () => {
        if (this.child !== child) { reject(new NodeKvmError('ERR_NET_CLOSED', 'the user network backend was closed while starting')); return; }
        const listening = (['tcp', 'udp'] as const).every((p) => {
          const want = active.filter((f) => f.proto === p);
          if (want.length === 0) return true;
          const bound = boundPorts(p);
          return want.every((f) => bound.has(f.host));
        });
        if (listening && child.pid !== undefined) {
          child.off('exit', onEarlyExit);
          child.once('exit', (code, signal) => {
            if (this.child !== child) return; // stopped by us
            this.child = undefined;
            this.sock = undefined;
            const why = tail();
            const hint = /routable interface|not usable/.test(why) ? ' (passt needs a network interface with a default route on this host)' : '';
            this.fail(new NodeKvmError('ERR_NET_USER_EXITED', `passt exited (${signal ?? `status ${code}`})${hint}; the guest's link is down\n${why}`));
          });
          this.setLink(true);
          this.flush();
          resolve();
          return;
        }
        if (Date.now() > deadline) {
          this.stop();
          this.setLink(false);
          reject(new NodeKvmError('ERR_NET_USER_START', `passt did not bind its forwards within ${this.startTimeoutMs} ms\n${tail()}`));
          return;
        }
        timer = setTimeout(poll, active.length === 0 ? 0 : 10);
      };
      timer = setTimeout(poll, 0);
    });
  }
}

/**
 * An IPv4 frame cut to the length its IP header gives. Drivers pad short frames to Ethernet's
 * 60-byte minimum (8139too does, in software); passt (2023.03) takes those pad bytes for part
 * of the packet and stops seeing the guest's TCP ACKs, so the pad never reaches it.
 */
export function withoutPadding(frame: Uint8Array): Uint8Array {
  if (frame.length < 34 || frame[12] !== 0x08 || frame[13] !== 0x00) return frame;
  const total = 14 + ((frame[16]! << 8) | frame[17]!);
  return total >= 34 && total < frame.length ? frame.subarray(0, total) : frame;
}

function ipv4Bytes(a: string): number[] {
  return a.split('.').map(Number);
}

/**
 * A gratuitous ARP request (an announcement, RFC 5227 §3) from `mac` for `ip`, as a guest sends
 * it when it takes an address: broadcast, sender and target address both `ip`.
 */
export function arpAnnouncement(mac: Uint8Array, ip: readonly number[]): Uint8Array {
  const f = new Uint8Array(60);
  f.fill(0xff, 0, 6);
  f.set(mac, 6);
  f[12] = 0x08; f[13] = 0x06;
  f.set([0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01], 14); // Ethernet/IPv4, request
  f.set(mac, 22);
  f.set(ip, 28);
  f.set(ip, 38); // target MAC (32..37) stays zero
  return f.subarray(0, 42);
}

/** A `user` network backend: `Machine.create({ net: [{ backend: userNet({ forward: [{ host: 8080, guest: 80 }] }) }] })`. */
export function userNet(opts: UserNetOptions = {}): UserNetBackend {
  return new UserNetBackend(opts);
}
