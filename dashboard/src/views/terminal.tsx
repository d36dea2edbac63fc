// Terminal: `coral shell` in the browser (xterm.js): a PTY beside a component,
// in its process's namespaces, through the colony and its agent. Needs an
// exec session (coral dashboard --token <exec token>); the colony records the
// whole session (coral audit replay). Keys go as typed, in order, one call at
// a time; the terminal's size follows the page.
import { FitAddon } from "@xterm/addon-fit";
import { Terminal } from "@xterm/xterm";
import "@xterm/xterm/css/xterm.css";
import { useEffect, useRef, useState } from "preact/hooks";
import { shell } from "../api.ts";
import { Link } from "../router.tsx";

type State = { kind: "connecting" } | { kind: "open"; sessionId: string } | { kind: "ended"; text: string; sessionId?: string } | { kind: "failed"; text: string };

const endReasons: Record<string, string> = { idle: "it was idle too long", max_duration: "it reached its maximum duration", closed: "it was closed" };

export function TerminalView({ name, exec }: { name: string; exec: boolean }) {
  const box = useRef<HTMLDivElement>(null);
  const [state, setState] = useState<State>({ kind: "connecting" });
  useEffect(() => {
    if (!exec || !box.current) return;
    const term = new Terminal({ cursorBlink: true, fontSize: 13, convertEol: false, scrollback: 5000 });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(box.current);
    fit.fit();
    const abort = new AbortController();
    let sessionId = "";
    let pending: Uint8Array[] = [];
    let sending = false;
    const encoder = new TextEncoder();
    // Input in order, one call at a time; what is typed meanwhile goes in the next call.
    const flush = async () => {
      if (sending || !sessionId || pending.length === 0) return;
      sending = true;
      const parts = pending;
      pending = [];
      const data = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const p of parts) {
        data.set(p, at);
        at += p.length;
      }
      try {
        await shell.sendShellInput({ sessionId, data });
      } catch (err) {
        term.write(`\r\n\x1b[31m${err instanceof Error ? err.message : String(err)}\x1b[0m\r\n`);
      } finally {
        sending = false;
        void flush();
      }
    };
    const typed = term.onData((d) => {
      pending.push(encoder.encode(d));
      void flush();
    });
    const resized = term.onResize(({ cols, rows }) => {
      if (sessionId) void shell.resizeShell({ sessionId, cols, rows }).catch(() => undefined);
    });
    const onWindowResize = () => fit.fit();
    addEventListener("resize", onWindowResize);
    (async () => {
      for await (const res of shell.openShell({ serviceName: name, cols: term.cols, rows: term.rows }, { signal: abort.signal })) {
        const e = res.event;
        if (e.case === "started") {
          sessionId = e.value.sessionId;
          setState({ kind: "open", sessionId });
          term.focus();
        } else if (e.case === "data") term.write(e.value);
        else if (e.case === "exit") {
          const why = endReasons[e.value.reason];
          setState({ kind: "ended", sessionId, text: `The shell ended${why ? `: ${why}` : ""} (exit code ${e.value.exitCode}).` });
        }
      }
    })().catch((err: unknown) => {
      if (!abort.signal.aborted) setState({ kind: "failed", text: err instanceof Error ? err.message.replace(/^\[[a-z_]+\] /, "") : String(err) });
    });
    return () => {
      abort.abort();
      typed.dispose();
      resized.dispose();
      removeEventListener("resize", onWindowResize);
      term.dispose();
    };
  }, [name, exec]);

  return (
    <div class="terminal-view">
      <div class="toolbar">
        <h2>
          <Link href={`/components/${encodeURIComponent(name)}`}>{name}</Link> · terminal
        </h2>
        <span class="muted" data-testid="terminal-state" data-state={state.kind}>
          {state.kind === "connecting" && exec && "connecting…"}
          {state.kind === "open" && `in ${name}'s namespaces · recorded (coral audit replay ${state.sessionId})`}
          {state.kind === "ended" && state.text}
        </span>
      </div>
      {!exec && (
        <p class="muted" data-testid="terminal-needs-exec">
          A terminal needs an exec session: an admin creates a token with <code>coral token create --name ops --scope exec</code>, then sign in with{" "}
          <code>coral dashboard --token &lt;that token&gt;</code>. Sessions are recorded.
        </p>
      )}
      {state.kind === "failed" && (
        <p class="error" data-testid="terminal-error">
          {state.text}
        </p>
      )}
      <div class="terminal" ref={box} data-testid="terminal" />
    </div>
  );
}
