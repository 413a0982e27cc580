// Shared CLI plumbing: the command contract, usage errors (exit 64, as sysexits' EX_USAGE),
// and a thin wrapper over node:util parseArgs that splits off everything after "--".
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { Writable } from 'node:stream';
import { NodeKvmError, type ErrorCode } from '../errors.js';

export const EXIT_USAGE = 64;
export const EXIT_SOFTWARE = 70;

/** Exits 64. `code` is ERR_USAGE, or the code of the option check that refused a value. */
export class UsageError extends NodeKvmError {
  constructor(message: string, code: ErrorCode = 'ERR_USAGE') {
    super(code, message);
  }
}

/** Codes of errors that judge a value the user gave as an option: these exit 64 too. */
export const OPTION_ERROR_CODES: ReadonlySet<string> = new Set<ErrorCode>([
  'ERR_INVALID_MEMORY', 'ERR_MEMORY_TOO_LARGE', 'ERR_INVALID_CPUS', 'ERR_UNKNOWN_DEVICE', 'ERR_INVALID_NET',
]);

/** Run `fn`; an option-range error it throws becomes a UsageError with the same code and message. */
export function asUsage<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof NodeKvmError && OPTION_ERROR_CODES.has(e.code)) throw new UsageError(e.message, e.code as ErrorCode);
    throw e;
  }
}

export interface CliIo {
  stdout: Writable;
  stderr: Writable;
  env: NodeJS.ProcessEnv;
}

/** One `node-kvm <name>` subcommand. `run` returns the process exit code. */
export interface CliCommand {
  summary: string;
  usage: string;
  run(argv: string[], io: CliIo): Promise<number>;
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** The typed `values` parseArgs gives for an options table. */
export type Values<O extends Options> = ReturnType<typeof parseArgs<{ options: O; strict: true; allowPositionals: true }>>['values'];

export interface Parsed<O extends Options> {
  values: Values<O>;
  positionals: string[];
  /** Arguments after "--", untouched (undefined when there was no "--"). */
  rest: string[] | undefined;
}

export function parseCommandArgs<O extends Options>(argv: string[], options: O, allowPositionals = false): Parsed<O> {
  const dd = argv.indexOf('--');
  const head = dd < 0 ? argv : argv.slice(0, dd);
  const rest = dd < 0 ? undefined : argv.slice(dd + 1);
  try {
    const r = parseArgs({ args: head, options, allowPositionals, strict: true });
    return { values: r.values as Values<O>, positionals: r.positionals, rest };
  } catch (e) {
    // parseArgs throws TypeError with ERR_PARSE_ARGS_* codes; keep its wording, make it ours
    throw new UsageError((e as Error).message);
  }
}

export function intOption(value: string | undefined, name: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`${name} must be an integer from ${min} to ${max} (got ${JSON.stringify(value)})`);
  return n;
}

export const write = (s: Writable, text: string): void => {
  s.write(text.endsWith('\n') ? text : text + '\n');
};
