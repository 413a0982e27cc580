// The README's code blocks and the names it documents, for the tests that hold the package to
// it. A block whose fence reads ```js runnable is run as written (```js runnable kvm: it needs
// /dev/kvm); other blocks need a Linux guest and are only checked for their imports.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export interface ReadmeBlock {
  lang: string;
  runnable: boolean;
  needsKvm: boolean;
  code: string;
  /** 1-based line of the opening fence. */
  line: number;
}

export function readme(): string {
  return readFileSync(join(repoRoot, 'README.md'), 'utf8');
}

export function readmeBlocks(text = readme()): ReadmeBlock[] {
  const blocks: ReadmeBlock[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^```(\S*)(.*)$/.exec(lines[i]!);
    if (!m || m[1] === '') continue;
    const end = lines.indexOf('```', i + 1);
    if (end < 0) throw new Error(`README: the fence at line ${i + 1} is not closed`);
    const words = m[2]!.trim().split(/\s+/);
    blocks.push({ lang: m[1]!, runnable: words.includes('runnable'), needsKvm: words.includes('kvm'), code: lines.slice(i + 1, end).join('\n') + '\n', line: i + 1 });
    i = end;
  }
  return blocks;
}

/** Every `import { a, b } from 'node-kvm…'` in the README's blocks: entry point → names. */
export function readmeImports(blocks = readmeBlocks()): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const b of blocks) {
    for (const m of b.code.matchAll(/import\s*\{([^}]*)\}\s*from\s*'(node-kvm(?:\/[a-z]+)?)'/g)) {
      const names = out.get(m[2]!) ?? new Set<string>();
      for (const n of m[1]!.split(',').map((s) => s.trim().replace(/^type\s+/, '')).filter(Boolean)) names.add(n);
      out.set(m[2]!, names);
    }
  }
  return out;
}

/** The entry points the README documents (`node-kvm`, `node-kvm/net`, …). */
export function readmeEntryPoints(text = readme()): string[] {
  return [...new Set([...text.matchAll(/`(node-kvm(?:\/[a-z]+)?)`/g)].map((m) => m[1]!))].sort();
}

/** Names of the API the README's prose puts in backquotes: `Machine`, `TapBackend`, `ErrorCode`… */
export function readmeApiNames(text = readme()): string[] {
  const prose = text.replace(/```[\s\S]*?```/g, '');
  return [...new Set([...prose.matchAll(/`([A-Z][A-Za-z0-9]+)(?:\.[A-Za-z]+)?(?:\([^`]*\))?`/g)].map((m) => m[1]!))].sort();
}
