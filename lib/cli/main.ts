// `node-kvm <command> ...`: dispatch from a table, so a new command is one line here.
import { NodeKvmError } from '../errors.js';
import { EXIT_SOFTWARE, EXIT_USAGE, UsageError, write, type CliCommand, type CliIo } from './args.js';

export const COMMANDS: Record<string, () => Promise<CliCommand>> = {
  image: async () => (await import('./image.js')).command,
  lab: async () => (await import('./lab.js')).command,
  doctor: async () => (await import('./doctor.js')).command,
  run: async () => (await import('./run.js')).command,
  exec: async () => (await import('./exec.js')).command,
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
    if (e instanceof UsageError) {
      write(io.stderr, `node-kvm ${name}: ${e.message}\n${cmd.usage}`);
      return EXIT_USAGE;
    }
    if (e instanceof NodeKvmError) {
      write(io.stderr, `node-kvm ${name}: ${e.message} [${e.code}]`);
      return 1;
    }
    write(io.stderr, `node-kvm ${name}: internal error: ${(e as Error)?.stack ?? String(e)}`);
    return EXIT_SOFTWARE;
  }
}
