export { buildCli, main } from "./cli/main.ts";
export { coralVersion } from "./version.ts";
