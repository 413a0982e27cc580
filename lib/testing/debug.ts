// NODE_KVM_DEBUG=1: a VM test that fails keeps its VMs running and serves each one's console on
// a UNIX socket, and prints the `node-kvm attach <socket>` command that opens it from another
// terminal. The test ends when the last attached session detaches (Ctrl-A x in the client), or
// after NODE_KVM_DEBUG_TIMEOUT seconds (default 600) when nobody attaches or detaches.
// Without the variable nothing here runs.
import { createServer, type Server, type Socket } from 'node:net';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestVm } from './vm.js';

/** Whether failing VM tests keep their VMs for `node-kvm attach` (NODE_KVM_DEBUG=1). */
export function debugEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.NODE_KVM_DEBUG === '1';
}

/** How long a failed test waits for its user, in ms (NODE_KVM_DEBUG_TIMEOUT seconds, default 600). */
export function debugTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  const s = Number(env.NODE_KVM_DEBUG_TIMEOUT ?? 600);
  return Number.isFinite(s) && s > 0 ? s * 1000 : 600_000;
}

/** Where vm `name` of this process listens (short: a UNIX socket path has at most 107 bytes). */
export function debugSocketPath(name: string, index: number, dir = tmpdir()): string {
  const safe = name.replace(/[^A-Za-z0-9._-]+/g, '-').slice(0, 40);
  return join(dir, `nkvm-${process.pid}-${index}-${safe}.sock`);
}

/** What the guest is sent when a session attaches: its console shell echoes again for a person. */
const ON_ATTACH = 'stty echo\n';

/** Serve `vm`'s console on `path`: console output to every client, client bytes to the console. */
function serve(vm: TestVm, path: string, events: { attached(): void; detached(): void }, sockets: Set<Socket>): Promise<Server> {
  rmSync(path, { force: true });
  const server = createServer((sock: Socket) => {
    sockets.add(sock);
    events.attached();
    const out = (chunk: Buffer): void => { sock.write(chunk); };
    sock.write(`[node-kvm] attached to vm ${vm.name}; Ctrl-A x detaches\r\n${vm.tail(1000).replace(/\r?\n/g, '\r\n')}`);
    vm.console.on('output', out);
    vm.console.write(ON_ATTACH);
    sock.on('data', (d: Buffer) => vm.console.write(d));
    const end = (): void => {
      sockets.delete(sock);
      vm.console.off('output', out);
      events.detached();
    };
    sock.once('close', end);
    sock.on('error', () => sock.destroy());
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve(server));
  });
}

/**
 * Keep `vms` for a person to attach to; resolves when the last session detached or after the
 * timeout. `print` gets the lines telling how to attach.
 */
export async function holdForDebug(test: string, vms: readonly TestVm[], print: (text: string) => void, timeoutMs = debugTimeoutMs()): Promise<void> {
  const live = vms.filter((v) => v.machine.state === 'running');
  if (live.length === 0) {
    print(`node-kvm: test "${test}" failed; NODE_KVM_DEBUG=1 but none of its VMs is still running\n`);
    return;
  }
  let sessions = 0;
  let finish!: () => void;
  const done = new Promise<void>((r) => (finish = r));
  const events = {
    attached: () => { sessions++; },
    detached: () => { if (--sessions === 0) finish(); },
  };
  const servers: Array<{ server: Server; path: string }> = [];
  const sockets = new Set<Socket>();
  try {
    for (const [i, vm] of live.entries()) {
      const path = debugSocketPath(vm.name, i);
      servers.push({ server: await serve(vm, path, events, sockets), path });
    }
    const lines = servers.map(({ path }, i) => `  vm ${live[i]!.name}: node-kvm attach ${path}`);
    print(`node-kvm: test "${test}" failed; its VMs are kept for debugging (NODE_KVM_DEBUG=1):\n${lines.join('\n')}\n`
      + `  (Ctrl-A x detaches; the test ends when the last session detaches, or in ${Math.round(timeoutMs / 1000)} s)\n`);
    // Each VM that ends on its own also ends what there is to debug.
    const ended = Promise.all(live.map((v) => v.machine.wait()));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([done, ended, new Promise<void>((r) => { timer = setTimeout(r, timeoutMs); })]);
    clearTimeout(timer);
  } finally {
    // Sessions still open are cut (their clients say the VM ended), then the sockets go.
    for (const s of sockets) s.destroy();
    await Promise.all(servers.map(({ server, path }) => new Promise<void>((r) => {
      server.close(() => r());
      rmSync(path, { force: true });
    })));
  }
}
