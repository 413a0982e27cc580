// `node-kvm doctor [--json]`
import { doctor } from '../doctor.js';
import { parseCommandArgs, write, type CliCommand } from './args.js';

const MARK = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL' } as const;

export const command: CliCommand = {
  summary: 'check /dev/kvm, virtualization support, TAP/netns, QEMU and cached images',
  usage: 'usage: node-kvm doctor [--json]\n  exit status 1 when a check fails',
  async run(argv, io) {
    const { values } = parseCommandArgs(argv, { json: { type: 'boolean' } });
    const r = await doctor();
    if (values.json) {
      write(io.stdout, JSON.stringify(r, null, 2));
    } else {
      const lines = r.checks.map((c) => `${MARK[c.status]}  ${c.id.padEnd(13)} ${c.detail}${c.fix ? `\n      -> ${c.fix}` : ''}`);
      lines.push('', r.canBootLinuxDirectly
        ? 'verdict: Linux guests boot directly on this host.'
        : 'verdict: Linux guests need the nested lab here (node-kvm lab -- ...).');
      write(io.stdout, lines.join('\n'));
    }
    return r.checks.some((c) => c.status === 'fail') ? 1 : 0;
  },
};
