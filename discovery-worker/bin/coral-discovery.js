#!/usr/bin/env node
// Runs the TypeScript sources directly through tsx: nothing to build after npm ci.
import { register } from "tsx/esm/api";

register();
const { discoveryCli } = await import("../src/self-hosted/cli.ts");
await discoveryCli().parseAsync(process.argv);
