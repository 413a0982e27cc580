#!/usr/bin/env node
// Thin shim: the CLI lives in TypeScript (lib/cli/main.ts), compiled to dist/.
import { main } from '../dist/lib/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
// The command has returned and released what it opened. Work it gave up on (an image build cut
// short by --timeout) must not keep the process alive: exit after a short grace for output.
setTimeout(() => process.exit(), 2000).unref();
