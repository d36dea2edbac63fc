#!/usr/bin/env node
// Runs the TypeScript sources directly through tsx: nothing to build after npm ci.
import { register } from "tsx/esm/api";

register();
const { runDiscoveryCli } = await import("../src/self-hosted/cli.ts");
// The server keeps the process alive; only a finished command (or an error) sets the code.
const code = await runDiscoveryCli(process.argv);
if (code !== 0) process.exit(code);
