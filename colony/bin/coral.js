#!/usr/bin/env node
// Runs the TypeScript sources directly through tsx: nothing to build after npm ci.
import { register } from "tsx/esm/api";

register();
// An agent (`coral connect`) loads only its own command; everything else the whole CLI.
const entry = process.argv[2] === "connect" ? "../src/cli/connect-entry.ts" : "../src/cli/main.ts";
const { main } = await import(entry);
process.exitCode = await main(process.argv);
