// node --import ./record-modules.mjs …: appends every URL the ES module
// loader resolves in that process (and every import() of it) to the file
// named by $CORAL_RECORD_MODULES, one a line. The hooks run on the loader's
// own thread (record-modules-hooks.mjs), so they see every import.
import { register } from "node:module";

const file = process.env.CORAL_RECORD_MODULES;
if (!file) throw new Error("record-modules.mjs: set CORAL_RECORD_MODULES to the file to write");
register("./record-modules-hooks.mjs", import.meta.url, { data: { file } });
