// `node-kvm lab [options] -- COMMAND...`: run COMMAND where a real /dev/kvm exists.
import { parseEnvSpecs } from '../lab/job.js';
import { DEFAULT_LAB_MEMORY, DEFAULT_LAB_TIMEOUT_MS, runInLab } from '../lab/run.js';
import { UsageError, intOption, parseCommandArgs, write, type CliCommand } from './args.js';

const usage = `usage: node-kvm lab [--timeout S] [--env NAME[=VALUE]]... [--memory ${DEFAULT_LAB_MEMORY}] [--cpus N]
                    [--cwd DIR] [--verbose] [--bzimage] -- COMMAND [ARG]...
  Boots the nested lab (QEMU TCG with emulated AMD SVM, kvm_amd inside) over a read-only view
  of this host's root with a RAM overlay, and runs COMMAND there in the current directory.
  COMMAND's stdout and stderr stream back separately; its exit status is the lab's.
  --timeout S   give up after S seconds (default ${DEFAULT_LAB_TIMEOUT_MS / 1000}), exit 124
  --env NAME    pass the host's NAME (or NAME=VALUE); PATH, HOME, LANG, TERM, CI,
                XDG_CACHE_HOME pass anyway, and NODE_KVM_LAB=1 is set
  --verbose     show L1's console on stderr
  --bzimage     boot L1 from the bzImage instead of vmlinux (PVH)`;

export const command: CliCommand = {
  summary: 'run a command inside the nested lab (real KVM on hosts without VMX/SVM)',
  usage,
  async run(argv, io) {
    const { values, positionals, rest } = parseCommandArgs(argv, {
      timeout: { type: 'string' },
      env: { type: 'string', multiple: true },
      memory: { type: 'string' },
      cpus: { type: 'string' },
      cwd: { type: 'string' },
      verbose: { type: 'boolean' },
      bzimage: { type: 'boolean' },
    }, true);
    if (positionals.length > 0) throw new UsageError(`put the command after "--" (node-kvm lab -- ${positionals.join(' ')})`);
    if (!rest || rest.length === 0) throw new UsageError('missing command after "--"');
    const timeoutS = intOption(values.timeout, '--timeout', 1, 7 * 24 * 3600);
    const cpus = intOption(values.cpus, '--cpus', 1, 64);
    if (values.memory !== undefined && !/^\d+[MG]$/i.test(values.memory)) throw new UsageError(`--memory must look like 3G or 2048M (got ${values.memory})`);
    let env: Record<string, string>;
    try {
      env = parseEnvSpecs(values.env ?? [], io.env);
    } catch (e) {
      throw new UsageError((e as Error).message); // a bad --env is a usage error (exit 64)
    }

    const ac = new AbortController();
    let exitOnAbort = 130;
    const onSignal = (sig: NodeJS.Signals): void => {
      write(io.stderr, `node-kvm lab: ${sig}, stopping QEMU`);
      exitOnAbort = sig === 'SIGTERM' ? 143 : 130; // 128 + signal number, as shells report it
      ac.abort();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      const r = await runInLab({
        command: rest, cwd: values.cwd, env, timeoutMs: timeoutS === undefined ? undefined : timeoutS * 1000,
        memory: values.memory, cpus, stdout: io.stdout, stderr: io.stderr, console: values.verbose ? io.stderr : undefined,
        signal: ac.signal, pvh: !values.bzimage, log: (l) => values.verbose && write(io.stderr, `node-kvm lab: ${l}`),
      });
      if (values.verbose) write(io.stderr, `node-kvm lab: L1 ready after ${r.bootMs ?? '?'} ms, total ${r.durationMs} ms, exit ${r.exitCode}`);
      if (r.error) {
        write(io.stderr, `node-kvm lab: ${r.error}\n--- L1 console (tail) ---\n${r.consoleTail}`);
        if (r.aborted) return exitOnAbort;
      }
      return r.exitCode;
    } finally {
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
    }
  },
};
