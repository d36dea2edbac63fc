// The app's V8 inspector, opened in-process for the agent's live debugging
// (OpenInspector / CloseInspector): node:inspector on 127.0.0.1 and a free
// port, so no SIGUSR1 is needed (an app may handle that signal itself, or run
// with --disable-sigusr1) and two Node services on one host never contend
// for 9229. Only what the SDK opened is closed again; an inspector the app
// opened itself (--inspect, its own inspector.open()) is left as it is.
import inspector from "node:inspector";

export interface OpenedInspector {
  websocketUrl: string;
  /** The SDK opened it (now, or for an earlier call not closed yet): CloseInspector closes it. */
  openedBySdk: boolean;
}

export class InProcessInspector {
  /** The SDK opened the inspector that is active now. */
  private opened = false;

  open(): OpenedInspector {
    const current = inspector.url();
    // Closed meanwhile by someone else (the recorder's watchdog calls inspector.close()).
    if (!current) this.opened = false;
    if (current) return { websocketUrl: current, openedBySdk: this.opened };
    // Port 0: a free one; the host keeps it on loopback whatever the app's flags say.
    inspector.open(0, "127.0.0.1", false);
    const url = inspector.url();
    if (!url) throw new Error("node:inspector opened no inspector (is this Node built without it?)");
    this.opened = true;
    return { websocketUrl: url, openedBySdk: true };
  }

  /** Closes the inspector if the SDK opened it; true when it did. */
  close(): boolean {
    if (!this.opened) return false;
    this.opened = false;
    if (!inspector.url()) return false;
    inspector.close();
    return true;
  }
}
