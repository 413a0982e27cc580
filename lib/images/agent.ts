// The guest agent (guest-agent/nkvm-agent.c, shipped in the package) built static with the
// host's gcc, for the default image and for host-side tests that run it over --stdio.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ImageError } from './errors.js';

/** Where /init finds the agent in the default image. */
export const AGENT_GUEST_PATH = '/sbin/nkvm-agent';

/** The agent's C source in this package (dist/lib/images/ → guest-agent/). */
export function agentSourcePath(): string {
  return fileURLToPath(new URL('../../../guest-agent/nkvm-agent.c', import.meta.url));
}

/** The source's text (part of the image profile's identity: a changed agent rebuilds images). */
export function agentSource(): string {
  const p = agentSourcePath();
  return existsSync(p) ? readFileSync(p, 'utf8') : '';
}

/** Compile the agent to `out` (static, size-optimised, stripped). Throws ERR_IMAGE_TOOL_MISSING. */
export function buildAgent(out: string, source = agentSourcePath()): void {
  if (!existsSync(source)) throw new ImageError('ERR_IMAGE_TOOL_MISSING', `the guest agent's source ${source} is missing from this installation`);
  const r = spawnSync('gcc', ['-static', '-Os', '-s', '-Wall', '-o', out, source], { encoding: 'utf8' });
  if (r.error !== undefined || r.status !== 0) {
    const why = r.error !== undefined ? (r.error as NodeJS.ErrnoException).code : r.stderr.trim().split('\n').slice(-3).join(' | ');
    throw new ImageError('ERR_IMAGE_TOOL_MISSING', `building the guest agent with gcc -static failed (${why}); install gcc and libc6-dev (apt-get install build-essential)`);
  }
}
