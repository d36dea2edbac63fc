import { describe, expect, it } from "vitest";
import { bodyStart, parseRets, traceScript } from "./go-ret.ts";

const validateCard = `
0000000000459e80 <main.ValidateCard>:
  459e80:\tcmp    0x10(%r14),%rsp
  459e84:\tjbe    459ed7 <main.ValidateCard+0x57>
  459e86:\tsub    $0x10,%rsp
  459ec9:\tret
  459ecd:\tretq
  459ed0:\tcall   459e00 <main.grow>
  459ed6:\tret    $0x8
  459ed7:\tmov    %rax,0x8(%rsp)
  459edc:\tcall   457a40 <runtime.morestack_noctxt.abi0>
  459ee1:\tjmp    459e80 <main.ValidateCard>
`;

describe("Go probe points from objdump", () => {
  it("finds every RET form", () => {
    expect(parseRets(validateCard)).toEqual([0x459ec9n, 0x459ecdn, 0x459ed6n]);
  });

  it.each([
    ["after the stack check", validateCard, 0x459e86n],
    ["at the start without a stack check (nosplit)", "  401000:\tmov    %rax,%rbx\n  401003:\tret\n", 0x401000n],
    ["after a large-frame check", "  1000:\tlea    -0x1000(%rsp),%r12\n  1008:\tcmp    0x10(%r14),%r12\n  100c:\tjbe    2000 <x>\n  1012:\tpush   %rbp\n", 0x1012n],
  ])("puts the entry probe %s", (_what, text, want) => {
    const start = BigInt(`0x${/^\s*([0-9a-f]+):/m.exec(text)![1]}`);
    expect(bodyStart(text, start)).toBe(want);
  });

  it("writes only integers into the tracefs script", () => {
    const s = traceScript({ group: "coral_1_2", pid: 42, entry: 0x59e86n, rets: [0x59ec9n], argCount: 2, captureReturn: true, tids: [42, 43], durationS: 5 });
    expect(s).toContain("echo 'p:coral_1_2/entry /proc/42/exe:0x59e86 g=%r14:x64 a0=%ax:s64 a1=%bx:s64' >>");
    expect(s).toContain("echo 'p:coral_1_2/ret0 /proc/42/exe:0x59ec9 g=%r14:x64 r=%ax:s64' >>");
    expect(s).toContain(`echo '42 43' > "$I/set_event_pid"`);
    expect(s).toContain(`timeout 5 cat "$I/trace_pipe" &`);
  });
});
