#!/usr/bin/env node
// Runs the TypeScript sources directly through tsx: nothing to build after npm ci.
// main.ts loads only the module of the command being run (an agent, `coral
// connect`, never loads the colony runtime or miniflare).
import { register } from "tsx/esm/api";

register();
const { main } = await import("../src/cli/main.ts");
process.exitCode = await main(process.argv);
