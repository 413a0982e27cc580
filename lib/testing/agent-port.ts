// Where TestVm meets the machine's virtio-console port for the guest agent.
import type { Duplex } from 'node:stream';
import type { Machine } from '../machine/index.js';
import { AGENT_PORT_NAME } from './agent-protocol.js';

/** Machine.create options that add the agent's port. */
export function agentPortOptions(): { ports: Array<{ name: string }> } {
  return { ports: [{ name: AGENT_PORT_NAME }] };
}

/** The host end of the agent's port, or undefined when the machine has none. */
export function openAgentPort(machine: Machine): Duplex | undefined {
  const m = machine as unknown as { port?: (name: string) => Duplex };
  if (typeof m.port !== 'function') return undefined;
  try {
    return m.port(AGENT_PORT_NAME);
  } catch {
    return undefined;
  }
}
