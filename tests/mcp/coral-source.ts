// The coral command run from the TypeScript sources:
//   node --conditions=coral-source --import tsx tests/mcp/coral-source.ts <args>
// For the security tests, which must exercise the code as it is in the
// checkout even before `npm run build` compiled it to dist/.
import { main } from "@coral/cli";

process.exitCode = await main(process.argv);
