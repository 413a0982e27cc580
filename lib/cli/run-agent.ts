// `node-kvm run` with `nkvm.run=` on the default image: the command goes to the guest agent
// over its virtio-console port instead of the guest's /init running it on the serial console.
// Its stdout and stderr come back apart (to this process's stdout and stderr), stdin is this
// process's stdin when that is not a terminal, and the command's exit status is run's.
import type { Readable } from 'node:stream';
import type { Machine } from '../machine/index.js';
import { AgentClient } from '../testing/agent-client.js';
import { openAgentPort } from '../testing/agent-port.js';
import type { CliIo } from './args.js';

/** The value /init reads as "the host runs the command over the agent". */
export const AGENT_RUN = '@agent';

/**
 * The command of `nkvm.run="…"`, `nkvm.run=WORD` or `nkvm.run64=BASE64` (the same rules as the
 * guest's /init), and the command line with it replaced by `nkvm.run=@agent`.
 */
export function takeRunCommand(cmdline: string): { command: string; cmdline: string } | undefined {
  const patterns: Array<[RegExp, (m: RegExpExecArray) => string]> = [
    [/(^|\s)nkvm\.run="([^"]*)"/, (m) => m[2]!],
    [/(^|\s)nkvm\.run=(\S+)/, (m) => m[2]!],
    [/(^|\s)nkvm\.run64=(\S+)/, (m) => Buffer.from(m[2]!, 'base64').toString('utf8')],
  ];
  for (const [re, get] of patterns) {
    const m = re.exec(cmdline);
    if (m === null) continue;
    const command = get(m);
    if (command === '' || command === AGENT_RUN) return undefined;
    const rest = `${cmdline.slice(0, m.index)}${m[1]}nkvm.run=${AGENT_RUN}${cmdline.slice(m.index + m[0].length)}`;
    return { command, cmdline: rest };
  }
  return undefined;
}

/**
 * Run `command` over the agent once it says HELLO; resolves with its exit status (128 + signal
 * when killed). Rejects when the machine ends first or the agent never answers.
 */
export async function runOverAgent(m: Machine, command: string, io: CliIo, stdin: Readable | undefined): Promise<number> {
  const port = openAgentPort(m);
  if (port === undefined) throw new Error('the machine has no agent port');
  const client = new AgentClient(port, 'node-kvm run');
  try {
    const ended = m.wait().then((r) => {
      throw new Error(`the guest ended (${r.reason}${r.detail ? `: ${r.detail}` : ''}) before the command finished`);
    });
    ended.catch(() => undefined); // raced below; after the command the machine is stopped on purpose
    await Promise.race([client.ready(24 * 3600 * 1000), ended]);
    const r = await Promise.race([client.exec({ command }, {
      stdin,
      keepOutput: false,
      onStdout: (c) => io.stdout.write(c),
      onStderr: (c) => io.stderr.write(c),
    }), ended]);
    return r.exitCode;
  } finally {
    client.close();
    port.destroy();
  }
}
