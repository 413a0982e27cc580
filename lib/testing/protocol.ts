// The exec protocol over the guest's serial console, as pure functions (unit-tested without
// KVM). A command travels base64-encoded into a script file; its stdout and stderr come back
// base64-encoded between per-call markers, with their byte counts so a damaged transfer is
// detected instead of silently returning wrong bytes.
//
// A marker is `__NK<kind>_<id>`. The shell prints it from two pieces (`printf '%s%s' '__NK'
// 'B_<id>'`), so the literal never appears in the text we send: an echoed command line cannot
// be mistaken for the reply. The reply of one exec looks like
//   __NKB_<id>:<exit status>:<stdout bytes>:<stderr bytes>
//   <base64 of stdout>
//   __NKM_<id>
//   <base64 of stderr>
//   __NKE_<id>
// Kernel messages (`[   12.345678] ...`) may land anywhere in it, even inside a base64 line;
// they are cut out before decoding (base64 has no '[', so this cannot eat payload).

/** Directory in the guest for the protocol's scratch files. */
export const GUEST_WORK_DIR = '/tmp/.nk';
/** Longest line we type at the guest's shell. Linux's canonical tty line holds 4095 bytes. */
export const MAX_LINE = 3000;

export type MarkerKind = 'B' | 'M' | 'E' | 'S' | 'A';

export function marker(kind: MarkerKind, id: string): string {
  return `__NK${kind}_${id}`;
}

/** Shell text that prints the marker (plus `suffix`, shell words) without containing it. */
export function printMarker(kind: MarkerKind, id: string, suffix = ''): string {
  return suffix === '' ? `printf '%s%s\\n' '__NK' '${kind}_${id}'` : `printf '%s%s%s\\n' '__NK' '${kind}_${id}' ${suffix}`;
}

/** Quote `s` as one word for a POSIX shell. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Split base64 text into pieces that each fit a typed line with some room to spare. */
export function chunkText(s: string, size = MAX_LINE - 256): string[] {
  const out: string[] = [];
  for (let i = 0; i < s.length; i += size) out.push(s.slice(i, i + size));
  return out.length > 0 ? out : [''];
}

/** A kernel log line as it reaches the console: `[    1.234567] text`. */
const KERNEL_LINE = /\[ *\d+\.\d+\][^\n]*\n?/g;

/** Remove kernel messages and carriage returns from console text. */
export function stripConsoleNoise(text: string): string {
  return text.replace(KERNEL_LINE, '').replace(/\r/g, '');
}

/** Decode a base64 section of console text (noise and line breaks removed first). */
export function decodeBase64Section(text: string): Buffer {
  const clean = stripConsoleNoise(text).replace(/[^A-Za-z0-9+/=]/g, '');
  return Buffer.from(clean, 'base64');
}

/**
 * The line that runs the script at `script` (already uploaded) and prints the reply.
 * The command runs in its own session (`setsid sh`): a syntax error or `exit` ends only that
 * shell, and a watchdog kills the whole process group after `timeoutSec` (the console's Ctrl-C
 * cannot be relied on: the guest's shell may have SIGINT ignored). The reply then says so.
 * Needs `set +m` in the interactive shell (no job control: no job notices on the console, and
 * the background child is not a group leader, so setsid needs no fork and $! is the group).
 */
export function execLine(id: string, script: string, timeoutSec: number, stdin = '/dev/null'): string {
  const w = GUEST_WORK_DIR;
  return [
    `rm -f ${w}/t`,
    `setsid sh ${script} <${stdin} >${w}/o 2>${w}/e & __nkp=$!`,
    `setsid sh -c "sleep ${Math.max(1, Math.ceil(timeoutSec))}; kill -9 -$__nkp && : >${w}/t" >/dev/null 2>&1 & __nkw=$!`,
    `wait $__nkp; __nkrc=$?`,
    // Until the watchdog child has called setsid it has no group of its own, and a command
    // quicker than that fork+exec would leave it running: the shell would wait out the whole
    // timeout and the watchdog would then report one. Kill it by pid as well in that case.
    `{ kill -9 -$__nkw || kill -9 $__nkw; } 2>/dev/null; wait $__nkw`,
    `__nkto=0; [ -e ${w}/t ] && __nkto=1`,
    printMarker('B', id, `":$__nkrc:$(wc -c <${w}/o):$(wc -c <${w}/e):$__nkto"`),
    `base64 ${w}/o`,
    printMarker('M', id),
    `base64 ${w}/e`,
    printMarker('E', id),
  ].join('; ');
}

/** Matches one whole exec reply for `id` in console output. */
export function execReplyPattern(id: string): RegExp {
  return new RegExp(`${marker('B', id)}:[\\s\\S]*?${marker('E', id)}`);
}

export interface ExecReply {
  exitCode: number;
  /** The guest-side watchdog killed the command. */
  timedOut: boolean;
  stdout: Buffer;
  stderr: Buffer;
}

export class ExecReplyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExecReplyError';
  }
}

/** Parse the text matched by execReplyPattern(id). Throws ExecReplyError on a damaged reply. */
export function parseExecReply(text: string, id: string): ExecReply {
  const b = marker('B', id);
  const m = marker('M', id);
  const e = marker('E', id);
  const start = text.indexOf(b);
  const mid = text.indexOf(m, start);
  const end = text.indexOf(e, mid);
  if (start < 0 || mid < 0 || end < 0) throw new ExecReplyError(`reply for ${id} is incomplete`);
  const headerEnd = text.indexOf('\n', start);
  if (headerEnd < 0 || headerEnd > mid) throw new ExecReplyError(`reply header for ${id} is cut`);
  const header = stripConsoleNoise(text.slice(start + b.length, headerEnd + 1)).trim();
  const h = /^:(\d+):\s*(\d+):\s*(\d+):([01])$/.exec(header);
  if (!h) throw new ExecReplyError(`bad reply header for ${id}: ${JSON.stringify(header)}`);
  const stdout = decodeBase64Section(text.slice(headerEnd + 1, mid));
  const stderr = decodeBase64Section(text.slice(mid + m.length, end));
  const want = [Number(h[2]), Number(h[3])];
  if (stdout.length !== want[0] || stderr.length !== want[1]) {
    throw new ExecReplyError(`reply for ${id} damaged: got ${stdout.length}/${stderr.length} bytes of stdout/stderr, guest sent ${want[0]}/${want[1]}`);
  }
  return { exitCode: Number(h[1]), timedOut: h[4] === '1', stdout, stderr };
}

/**
 * Lines that upload `data` into the guest file `path` (a plain path without shell
 * metacharacters) via base64. Each line prints an ack marker `A_<ackId(n)>:<status>`, so the
 * sender can pace itself to the tty's line buffer; the last one's status is base64 -d's.
 */
export function uploadLines(data: Uint8Array, path: string, ackId: (n: number) => string): string[] {
  const b64 = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64');
  const tmp = `${path}.b64`;
  const chunks = chunkText(b64);
  return chunks.map((c, i) => {
    const redir = i === 0 ? '>' : '>>';
    const last = i === chunks.length - 1;
    const status = last ? `base64 -d ${tmp} >${path}; __nks=$?; rm -f ${tmp}` : '__nks=$?';
    return `printf %s '${c}' ${redir}${tmp}; ${status}; ${printMarker('A', ackId(i), '":$__nks"')}`;
  });
}

/** Matches an ack line for `id` and captures the status. */
export function ackPattern(id: string): RegExp {
  return new RegExp(`${marker('A', id)}:(\\d+)`);
}
