#!/usr/bin/env node
// Thin shim: the CLI lives in TypeScript (lib/cli/main.ts), compiled to dist/.
import { main } from '../dist/lib/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
