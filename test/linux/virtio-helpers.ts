// Shared by the virtio linux-tier tests: a machine with two virtio-console ports, booted to the shell.
import { GUEST_PROMPT } from '../../lib/images/index.js';
import { DEFAULT_CMDLINE } from '../../lib/machine/cmdline.js';
import { Machine } from '../../lib/machine/index.js';
import { BOOT_TIMEOUT_MS, defaultImage } from './helpers.js';

// Not the agent's port (org.nodekvm.agent.0): the default image's agent holds that one open.
export const PORT = 'org.nodekvm.test.0';
export const OTHER = 'second-port';
export const MIB = 1024 * 1024;
export const TRANSFER_TIMEOUT_MS = 600_000;

export async function boot(extraCmdline = ''): Promise<Machine> {
  const img = await defaultImage();
  const m = await Machine.create({
    kernel: img.vmlinux, initrd: img.initrd, cmdline: `${DEFAULT_CMDLINE} quiet ${extraCmdline}`, memory: '256M',
    ports: [{ name: PORT }, { name: OTHER }],
  });
  m.start();
  await m.console.waitFor(GUEST_PROMPT, { timeout: BOOT_TIMEOUT_MS });
  return m;
}

