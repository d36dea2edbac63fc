// Reads the map dump bpftrace prints when the profile program exits:
//
//   @samples: 402
//   @stacks[4242,
//   	561d6916a143 0x561d6916a143 ([unknown])       user frames, leaf first
//   	7ff5a73c324a 0x7ff5a73c324a ([unknown])
//   ,
//   	ffffffff816dc4c8 vfs_write+120                  kernel frames, leaf first
//   ]: 7
//
// An empty user stack puts ", " on the header line ("@stacks[4242, , "); an
// empty kernel stack ends the entry on the separator line (", ]: 7"). Lines
// that fit nowhere, and entries that break off, are counted and set aside
// (with their samples when their count can be read): never an exception.

export interface KernelFrameText {
  address: bigint;
  /** "vfs_write" (the "+offset" taken off); undefined when bpftrace had no symbol. */
  symbol?: string;
}

export interface RawStack {
  pid: number;
  /** User frame addresses, leaf first (as bpftrace prints them). */
  user: bigint[];
  /** Kernel frames, leaf first. */
  kernel: KernelFrameText[];
  samples: number;
}

export interface StackDump {
  stacks: RawStack[];
  /** @samples: every sample the program took, kept in @stacks or not. */
  totalSamples: number | undefined;
  setAside: {
    /** Lines that did not parse (malformed entries count all their lines). */
    lines: number;
    /** Samples of malformed entries whose count could still be read. */
    samples: number;
    /** The first few such lines, for the agent's log. */
    examples: string[];
  };
}

const maxExamples = 5;
const headerRe = /^@stacks\[(\d{1,10}),(.*)$/;
const frameRe = /^\s+([0-9a-fA-F]{1,16})(?:\s+(.*?))?\s*$/;
const separatorRe = /^,\s*(?:\]:\s*(\d+))?\s*$/;
const endRe = /^\]:\s*(\d+)\s*$/;
const countAtEndRe = /\]:\s*(\d+)\s*$/;
const totalRe = /^@samples:\s*(\d+)\s*$/;

interface Open {
  stack: RawStack;
  section: "user" | "kernel";
  lines: string[];
}

/** Takes the dump line by line (it can be large), then finish() gives what it read. */
export class StackDumpReader {
  private readonly dump: StackDump = { stacks: [], totalSamples: undefined, setAside: { lines: 0, samples: 0, examples: [] } };
  private open: Open | undefined;
  /** Inside an entry already set aside: skip to its end. */
  private skipping = false;

  push(line: string): void {
    if (this.open) return this.continueEntry(this.open, line);
    if (this.skipping) {
      if (!headerRe.test(line)) {
        this.setAside([line], line);
        if (countAtEndRe.test(line)) this.skipping = false;
        return;
      }
      this.skipping = false;
    }
    const header = headerRe.exec(line);
    if (header) {
      this.open = { stack: { pid: Number(header[1]), user: [], kernel: [], samples: 0 }, section: "user", lines: [line] };
      return this.afterHeader(this.open, header[2]!);
    }
    const total = totalRe.exec(line);
    if (total) {
      this.dump.totalSamples = Number(total[1]);
      return;
    }
    if (line.trim() === "" || line.startsWith('{"ev"') || /^Attaching \d+ probes?/.test(line)) return;
    this.setAside([line]);
  }

  finish(): StackDump {
    if (this.open) this.setAside(this.open.lines);
    this.open = undefined;
    return this.dump;
  }

  /** The rest of "@stacks[PID," : "" (user frames follow), ", " (no user frames), ", ]: N" (no frames at all). */
  private afterHeader(open: Open, rest: string): void {
    const r = rest.trim();
    if (r === "") return;
    const sep = separatorRe.exec(r);
    if (sep) {
      open.section = "kernel";
      if (sep[1] !== undefined) this.close(open, Number(sep[1]));
      return;
    }
    const end = endRe.exec(r);
    if (end) return this.close(open, Number(end[1]));
    this.abandon(open, open.lines[0]);
  }

  private continueEntry(open: Open, line: string): void {
    if (headerRe.test(line)) {
      // The previous entry broke off.
      this.abandon(open, undefined);
      return this.push(line);
    }
    open.lines.push(line);
    const frame = frameRe.exec(line);
    if (frame) {
      const address = BigInt(`0x${frame[1]}`);
      if (open.section === "user") open.stack.user.push(address);
      else {
        const symbol = frame[2] ? /^([^\s+]+)(?:\+(?:0x)?[0-9a-fA-F]+)?(?:\s|$)/.exec(frame[2])?.[1] : undefined;
        open.stack.kernel.push(symbol && !/^(?:0x[0-9a-f]+|[[(].*)$/i.test(symbol) ? { address, symbol } : { address });
      }
      return;
    }
    const sep = separatorRe.exec(line);
    if (sep && open.section === "user") {
      open.section = "kernel";
      if (sep[1] !== undefined) this.close(open, Number(sep[1]));
      return;
    }
    const end = endRe.exec(line);
    if (end && open.section === "kernel") return this.close(open, Number(end[1]));
    this.abandon(open, line);
  }

  private close(open: Open, samples: number): void {
    this.open = undefined;
    open.stack.samples = samples;
    if (samples > 0) this.dump.stacks.push(open.stack);
  }

  /** Sets an entry aside; `bad` is the line that broke it (already in its lines), or undefined when it broke off. */
  private abandon(open: Open, bad: string | undefined): void {
    this.open = undefined;
    this.setAside(open.lines, bad);
    if (bad !== undefined && !countAtEndRe.test(bad)) this.skipping = true;
  }

  private setAside(lines: string[], countLine?: string): void {
    const a = this.dump.setAside;
    a.lines += lines.length;
    const count = countLine === undefined ? undefined : countAtEndRe.exec(countLine);
    if (count) a.samples += Number(count[1]);
    for (const l of lines) if (a.examples.length < maxExamples) a.examples.push(l.slice(0, 200));
  }
}

/** The dump in `text` (tests, and callers that hold it whole). */
export function parseStackDump(text: string): StackDump {
  const reader = new StackDumpReader();
  for (const line of text.split("\n")) reader.push(line.replace(/\r$/, ""));
  return reader.finish();
}
