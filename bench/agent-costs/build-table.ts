// Child of run.ts: builds a binary's function table N times; prints JSON.
import { readFileSync } from "node:fs";
import { readModuleSymbols } from "@coral/agent/profile";

const [binary, count] = [process.argv[2]!, Number(process.argv[3])];
const hwmMb = () => Number(/VmHWM:\s+(\d+)/.exec(readFileSync("/proc/self/status", "utf8"))![1]) / 1024;
const start = hwmMb();
const cpuMs: number[] = [];
let functions = 0;
for (let i = 0; i < count; i++) {
  const before = process.cpuUsage();
  const symbols = await readModuleSymbols(binary);
  const used = process.cpuUsage(before);
  cpuMs.push(Math.round((used.user + used.system) / 1000));
  functions = symbols.functions.length;
  symbols.functions.close();
}
console.log(JSON.stringify({ functions, cpuMs, hwmAboveStartMb: Math.round((hwmMb() - start) * 10) / 10 }));
