// The options and results of bootVm() and TestVm's calls (vm.ts), apart from the code that
// uses them.
import type { Image } from '../images/index.js';
import type { NetOptions } from '../machine/index.js';
import type { ShareOptions } from '../devices/virtio/9p/share.js';
import type { Size } from '../size.js';

/** Where a test registers cleanup: node:test's TestContext and vitest's context both fit. */
export interface CleanupHost {
  /** Run `fn` when the test ends. */
  after(fn: () => unknown): unknown;
}

/** Options of bootVm(). */
export interface BootVmOptions {
  /** Name used in errors and artifact files (default vm<N>). */
  name?: string;
  /** A verified image or the name of a cached one (default: the default image, built if missing). */
  image?: Image | string;
  /** Boot the image's bzImage instead of its (faster) uncompressed vmlinux. */
  bzImage?: boolean;
  /** Guest RAM: '256M', '1G' or bytes (default 256M). */
  memory?: Size;
  /** vCPUs (default 1). */
  cpus?: number;
  /**
   * NICs. Entries without a MAC get one unique in this process. 'user': one NIC on a user
   * network (passt: no root; the guest takes its address by DHCP; see TestVm.forward()).
   */
  net?: NetOptions[] | 'user';
  /**
   * Host directories shared over virtio-9p (Machine.create({ shares })). With `mount`, the
   * share is mounted at that guest path once the shell is ready; else use vm.mount(tag, path).
   */
  shares?: Array<ShareOptions & {
    /** Guest path to mount the share at once the shell is ready. */ mount?: string;
  }>;
  /** Files written into the guest after boot: guest path → host path or bytes. */
  files?: Record<string, string | Uint8Array>;
  /** Appended to the default kernel command line. */
  cmdline?: string;
  /** Keep the kernel's boot messages on the console (default: `quiet`). */
  verbose?: boolean;
  /** Milliseconds to reach the shell (default 180 s). */
  timeout?: number;
  /** Register close() with this test context's after() hook. */
  t?: CleanupHost;
  /**
   * Use the guest agent's virtio-console port when the image has the agent (default true);
   * false keeps everything on the serial console.
   */
  agent?: boolean;
}

/** Options of exec() and execOk(). */
export interface ExecOptions {
  /** Milliseconds (default 60 s). On timeout the command gets Ctrl-C and ERR_EXEC_TIMEOUT is thrown. */
  timeout?: number;
  /** Working directory for the command. */
  cwd?: string;
  /** Environment variables added for the command. */
  env?: Record<string, string>;
  /** Bytes given to the command on stdin (default: /dev/null). */
  input?: string | Uint8Array;
  /**
   * Stdin as a stream (a Readable or any async iterable of bytes), fed as the command reads it
   * over the agent's channel (the console path collects it first). Not with `input`.
   */
  stdin?: AsyncIterable<Uint8Array>;
  /** Each piece of stdout as it arrives (over the console: all of it once, at the end). */
  onStdout?: (chunk: Buffer) => void;
  /** Each piece of stderr as it arrives (over the console: all of it once, at the end). */
  onStderr?: (chunk: Buffer) => void;
}

/** Options of TestVm.mount(). */
export interface MountOptions {
  /** v9fs cache mode (default 'none': every access reaches the host, so host changes show at once). */
  cache?: 'none' | 'loose' | 'mmap' | 'fscache';
  /** Largest 9P message (default 512000: the most Linux's virtio transport takes, 125 pages). */
  msize?: number;
  /** Mount read-only in the guest too (a readonly share refuses changes with EROFS either way). */
  readonly?: boolean;
  /** Milliseconds for the mount command (default the exec timeout). */
  timeout?: number;
}

/** What a command did. */
export interface ExecResult {
  /** Its exit status. */
  exitCode: number;
  /** stdout decoded as UTF-8. */
  stdout: string;
  /** stderr decoded as UTF-8. */
  stderr: string;
  /** The exact bytes. */
  stdoutBytes: Buffer;
  /** The exact bytes. */
  stderrBytes: Buffer;
}
