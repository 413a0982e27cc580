// Errors of the testing helpers. Each carries the console tail, so a failed test shows what
// the guest printed last without digging through logs.
import { NodeKvmError } from '../errors.js';

function excerpt(b: Buffer | string, max = 2000): string {
  const s = typeof b === 'string' ? b : b.toString('utf8');
  return s.length > max ? `…${s.slice(-max)}` : s;
}

/** exec() did not finish in time. Code: `ERR_EXEC_TIMEOUT`. */
export class ExecTimeoutError extends NodeKvmError {
  constructor(
    /** The command. */
    readonly command: string,
    /** The timeout it had. */
    readonly timeoutMs: number,
    /** The last console output. */
    readonly tail: string,
    /** True when the shell answered again after Ctrl-C: the VM is still usable. */
    readonly recovered: boolean,
  ) {
    super('ERR_EXEC_TIMEOUT',
      `command did not finish within ${timeoutMs} ms: ${command}\n` +
      (recovered ? 'it was stopped (its process group killed; over the console, Ctrl-C); the VM is still usable\n' : 'the guest did not recover; the VM was stopped or fell back to the console\n') +
      `console tail:\n${tail}`);
  }
}

/** execOk() saw a non-zero exit status. Code: `ERR_EXEC_FAILED`. */
export class ExecFailedError extends NodeKvmError {
  constructor(
    /** The command. */
    readonly command: string,
    /** Its exit status. */
    readonly exitCode: number,
    /** What it printed on stdout. */
    readonly stdout: string,
    /** What it printed on stderr. */
    readonly stderr: string,
  ) {
    super('ERR_EXEC_FAILED',
      `command exited with status ${exitCode}: ${command}\n--- stdout ---\n${excerpt(stdout)}\n--- stderr ---\n${excerpt(stderr)}`);
  }
}

/**
 * writeFile/readFile over the agent: the guest's open/read/write failed. An ExecFailedError
 * (status 1, the guest's message as stderr) as on the console path, plus the errno.
 * Code: `ERR_EXEC_FAILED`.
 */
export class GuestFileError extends ExecFailedError {
  constructor(
    what: string,
    /** The guest's errno name (ENOENT…). */
    readonly errnoCode: string,
    /** The guest's errno number. */
    readonly errno: number,
    message: string,
  ) {
    super(what, 1, '', `${message}\n`);
  }
}

/** The reply on the console was damaged or the shell is gone. Code: `ERR_EXEC_PROTOCOL`. */
export class ExecProtocolError extends NodeKvmError {
  constructor(
    message: string,
    /** The last console output. */
    readonly tail: string,
  ) {
    super('ERR_EXEC_PROTOCOL', `${message}\nconsole tail:\n${tail}`);
  }
}

/** The VM did not reach a usable shell. Code: `ERR_VM_BOOT`. */
export class BootError extends NodeKvmError {
  constructor(
    message: string,
    /** The last console output. */
    readonly tail: string,
    options?: { cause?: unknown },
  ) {
    super('ERR_VM_BOOT', `${message}\nconsole tail:\n${tail}`, options);
  }
}
