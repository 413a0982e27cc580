// `node-kvm <command> ...`: dispatch from a table, so a new command is one line here.
import { NodeKvmError } from '../errors.js';
import { EXIT_SOFTWARE, EXIT_USAGE, UsageError, write, type CliCommand, type CliIo } from './args.js';

export const COMMANDS: Record<string, () => Promise<CliCommand>> = {
  image: async () => (await import('./image.js')).command,
  lab: async () => (await import('./lab.js')).command,
  doctor: async () => (await import('./doctor.js')).command,
  run: async () => (await import('./run.js')).command,
  exec: async () => (await import('./exec.js')).command,
  attach: async () => (await import('./attach.js')).command,
};

async function help(io: CliIo): Promise<void> {
  const lines = ['usage: node-kvm <command> [options]', '', 'commands:'];
  for (const [name, load] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(8)} ${(await load()).summary}`);
  lines.push('', 'node-kvm <command> --help shows the options of a command.');
  write(io.stdout, lines.join('\n'));
}

export async function main(argv: string[], io: CliIo = { stdout: process.stdout, stderr: process.stderr, env: process.env }): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    await help(io);
    return name === undefined ? EXIT_USAGE : 0;
  }
  const load = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!load) {
    write(io.stderr, `node-kvm: unknown command "${name}"; try: ${Object.keys(COMMANDS).join(', ')}`);
    return EXIT_USAGE;
  }
  const cmd = await load();
  if (rest.includes('--help') && !rest.slice(0, rest.indexOf('--help')).includes('--')) {
    write(io.stdout, cmd.usage);
    return 0;
  }
  try {
    return await cmd.run(rest, io);
  } catch (e) {
    return reportError(name, cmd.usage, e, io);
  }
}

/**
 * The exit status and message for an error a command threw: 64 for usage and option-range
 * errors, 1 for every other error the user or the system caused (a coded message, no stack),
 * 70 with the stack only for what can only be a bug of ours.
 */
export function reportError(name: string, usage: string, e: unknown, io: CliIo): number {
  if (e instanceof UsageError) {
    write(io.stderr, `node-kvm ${name}: ${e.message} [${e.code}]\n${usage}`);
    return EXIT_USAGE;
  }
  if (e instanceof NodeKvmError) {
    write(io.stderr, `node-kvm ${name}: ${e.message} [${e.code}]`);
    return 1;
  }
  // Node's system errors (ENOSPC on a write, EMFILE...) come from the host, not from a bug.
  const sys = e as NodeJS.ErrnoException | undefined;
  if (sys instanceof Error && typeof sys.code === 'string' && typeof sys.syscall === 'string') {
    write(io.stderr, `node-kvm ${name}: ${sys.message} [ERR_SYSTEM ${sys.code}]`);
    return 1;
  }
  write(io.stderr, `node-kvm ${name}: internal error (a bug in node-kvm; please report it): ${(e as Error)?.stack ?? String(e)}`);
  return EXIT_SOFTWARE;
}
