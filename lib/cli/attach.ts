// `node-kvm attach <socket>`: an interactive session on the console of a VM kept by a failed
// test under NODE_KVM_DEBUG=1 (lib/testing/debug.ts prints the command). Raw terminal in both
// directions; Ctrl-A x detaches (Ctrl-A Ctrl-A sends one Ctrl-A), as in QEMU's and screen's
// consoles.
import { connect } from 'node:net';
import { NodeKvmError } from '../errors.js';
import { parseCommandArgs, UsageError, write, type CliCommand } from './args.js';

const CTRL_A = 0x01;

/**
 * Split `bytes` typed by the user into what goes to the guest and whether Ctrl-A x was typed.
 * `pending` carries a Ctrl-A that ended the previous chunk.
 */
export function scanKeys(bytes: Uint8Array, state: { pending: boolean }): { send: Buffer; detach: boolean } {
  const out: number[] = [];
  for (const b of bytes) {
    if (state.pending) {
      state.pending = false;
      if (b === 0x78 /* x */) return { send: Buffer.from(out), detach: true };
      out.push(CTRL_A);
      if (b !== CTRL_A) out.push(b);
    } else if (b === CTRL_A) {
      state.pending = true;
    } else {
      out.push(b);
    }
  }
  return { send: Buffer.from(out), detach: false };
}

export const command: CliCommand = {
  summary: 'open a shell on a VM kept by a failed test (NODE_KVM_DEBUG=1)',
  usage: 'usage: node-kvm attach <socket>\n  the socket is the one a failed test printed under NODE_KVM_DEBUG=1; Ctrl-A x detaches',
  async run(argv, io) {
    const { positionals } = parseCommandArgs(argv, {}, true);
    if (positionals.length !== 1) throw new UsageError('attach takes one socket path');
    const path = positionals[0]!;
    const sock = connect(path);
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', (e: NodeJS.ErrnoException) => reject(new NodeKvmError('ERR_ATTACH',
        `no VM is listening on ${path} (${e.code ?? e.message}): its test has ended (the VM stopped when the test finished, `
        + 'a session detached, or the debug timeout passed), or the path is wrong')));
    });
    const stdin = process.stdin;
    const raw = stdin.isTTY === true;
    if (raw) stdin.setRawMode(true);
    const state = { pending: false };
    let detached = false;
    const onKeys = (d: Buffer): void => {
      const { send, detach } = scanKeys(d, state);
      if (send.length > 0) sock.write(send);
      if (detach) {
        detached = true;
        sock.end();
      }
    };
    stdin.on('data', onKeys);
    sock.on('data', (d: Buffer) => io.stdout.write(d));
    await new Promise<void>((resolve) => {
      sock.once('close', () => resolve());
      sock.on('error', () => sock.destroy());
      // stdin ending (a script's pipe) is not a detach: the session stays until the VM goes.
    });
    stdin.off('data', onKeys);
    if (raw) stdin.setRawMode(false);
    stdin.pause();
    write(io.stderr, detached ? '\n[node-kvm] detached' : '\n[node-kvm] the VM ended (its test finished); session closed');
    return 0;
  },
};
