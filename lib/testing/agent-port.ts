// Where TestVm meets the machine's virtio-console port for the guest agent.
import type { Duplex } from 'node:stream';
import type { Machine } from '../machine/index.js';
import { AGENT_PORT_NAME } from './agent-protocol.js';

/** Machine.create options that add the agent's port. */
export function agentPortOptions(): { ports: Array<{ name: string }> } {
  return { ports: [{ name: AGENT_PORT_NAME }] };
}

/** A new host stream of the agent's port, or undefined when the machine has no such port. */
export function openAgentPort(machine: Machine): Duplex | undefined {
  try {
    return machine.port(AGENT_PORT_NAME);
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_NO_SUCH_PORT') return undefined;
    throw e;
  }
}
