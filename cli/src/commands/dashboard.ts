// coral dashboard [--no-open] [--colony-url …] [--token …]: signs the browser
// in without copying a token. The CLI asks the colony (with its own token:
// the local token on the colony's machine, or --token/CORAL_TOKEN) for a
// one-time code, then prints the sign-in link and opens it when there is a
// desktop. The code works once, within a minute, and the browser session it
// becomes has the scope of the token that asked (read stays read).
import { spawn } from "node:child_process";
import { Command } from "commander";
import { resolveTarget, withRemoteOptions, type ColonyTarget, type RemoteOptions } from "./remote.ts";

interface DashboardOptions extends RemoteOptions {
  open: boolean;
}

export interface SignInLink {
  /** The colony's dashboard, without a code (to share). */
  dashboardUrl: string;
  /** The one-time sign-in link (the code is in the fragment: browsers never send it to a server). */
  signInUrl: string;
  scope: string;
  expiresAt: Date;
}

/** Asks the colony for a one-time sign-in code with the target's token. */
export async function requestSignInLink(target: ColonyTarget): Promise<SignInLink> {
  let res: Response;
  try {
    res = await fetch(`${target.url}/dashboard/api/sign-in-code`, {
      method: "POST",
      headers: target.token ? { authorization: `Bearer ${target.token}` } : {},
      signal: AbortSignal.timeout(15_000),
    });
  } catch {
    throw new Error(`colony not reachable at ${target.url} (${target.source}): is it running? Start it with: coral colony start`);
  }
  const body = (await res.json().catch(() => ({}))) as { code?: string; expiresAt?: string; scope?: string; path?: string; message?: string };
  if (res.status === 401) throw new Error(`not authenticated: ${body.message ?? "the colony refused the token"}`);
  if (res.status === 403) throw new Error(`permission denied: ${body.message ?? ""}`);
  if (!res.ok || !body.code || !body.path) throw new Error(`the colony could not make a sign-in code (HTTP ${res.status}${body.message ? `: ${body.message}` : ""}); is it a colony of this version?`);
  return { dashboardUrl: `${target.url}/`, signInUrl: `${target.url}${body.path}`, scope: body.scope ?? "", expiresAt: new Date(body.expiresAt ?? Date.now()) };
}

/** Whether a browser can be opened here: a graphical session (X11 or Wayland), or macOS. */
export function hasDesktop(env: NodeJS.ProcessEnv = process.env): boolean {
  return process.platform === "darwin" || Boolean(env.DISPLAY || env.WAYLAND_DISPLAY);
}

function openBrowser(url: string): void {
  const opener = process.platform === "darwin" ? "open" : "xdg-open";
  const child = spawn(opener, [url], { detached: true, stdio: "ignore" });
  child.on("error", () => console.error(`  (could not run ${opener}: open the link yourself)`));
  child.unref();
}

export function dashboardCommand(): Command {
  return withRemoteOptions(new Command("dashboard").description("open the colony's dashboard in a browser, signed in with a one-time link"))
    .option("--no-open", "only print the sign-in link, do not open a browser")
    .action(async (opts: DashboardOptions) => {
      const target = await resolveTarget(opts);
      const link = await requestSignInLink(target);
      if (opts.json) {
        console.log(JSON.stringify({ url: link.signInUrl, dashboard: link.dashboardUrl, scope: link.scope, expires_at: link.expiresAt.toISOString() }));
        return;
      }
      const seconds = Math.max(0, Math.round((link.expiresAt.getTime() - Date.now()) / 1000));
      console.log(`Dashboard: ${link.dashboardUrl}`);
      console.log(`  Sign in: ${link.signInUrl}`);
      console.log(`  One-time link (${link.scope} session): it works once, within ${seconds}s; run coral dashboard again for a new one.`);
      if (opts.open && hasDesktop()) {
        openBrowser(link.signInUrl);
        console.log("  Opening it in your browser…");
      }
    });
}
