// The SDK's flag cache: a Map lookup plus, for a partial rollout, a 32-bit
// FNV-1a hash of "<flag>:<user>" so a user stays in or out of a rollout
// across processes and restarts. No I/O here: it runs on every evaluation.

export interface FlagContext {
  userId?: string;
}

export interface FlagDefinition {
  /** Used until the colony has sent the flag. */
  defaultEnabled?: boolean;
  description?: string;
}

interface CachedFlag {
  enabled: boolean;
  rollout: number;
  users: Set<string> | null;
}

export interface FlagInput {
  name: string;
  enabled: boolean;
  rolloutPercentage: number;
  userIds: readonly string[];
}

/** FNV-1a over the UTF-16 code units (flag names and user ids are short). */
export function rolloutBucket(flag: string, userId: string): number {
  let h = 0x811c9dc5;
  const key = `${flag}:${userId}`;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % 100;
}

export class FlagCache {
  private flags = new Map<string, CachedFlag>();
  private defaults = new Map<string, boolean>();
  private listeners = new Set<(names: string[]) => void>();
  /** When the set we hold was built by the colony (ms); older sets are ignored. */
  private generatedAtMs = 0;

  constructor(definitions: Record<string, FlagDefinition> = {}) {
    for (const [name, def] of Object.entries(definitions)) this.defaults.set(name, def.defaultEnabled ?? false);
  }

  /**
   * True when the flag is on for this user: listed users always; otherwise
   * the flag must be enabled and, below 100 %, the user's bucket inside the
   * rollout (no user id: only a 100 % rollout counts).
   */
  isEnabled(name: string, context?: FlagContext): boolean {
    const flag = this.flags.get(name);
    if (flag === undefined) return this.defaults.get(name) ?? false;
    const userId = context?.userId;
    if (userId !== undefined && flag.users !== null && flag.users.has(userId)) return true;
    if (!flag.enabled) return false;
    if (flag.rollout >= 100) return true;
    if (userId === undefined || flag.rollout <= 0) return false;
    return rolloutBucket(name, userId) < flag.rollout;
  }

  /** Replaces the whole set; returns false (and keeps the current set) for an older one. */
  replace(flags: readonly FlagInput[], generatedAtMs: number): boolean {
    if (generatedAtMs < this.generatedAtMs) return false;
    this.generatedAtMs = generatedAtMs;
    const next = new Map<string, CachedFlag>();
    for (const f of flags)
      next.set(f.name, {
        enabled: f.enabled,
        rollout: Math.max(0, Math.min(100, f.rolloutPercentage)),
        users: f.userIds.length > 0 ? new Set(f.userIds) : null,
      });
    const changed = [...new Set([...this.flags.keys(), ...next.keys()])].filter((n) => !sameFlag(this.flags.get(n), next.get(n)));
    this.flags = next;
    if (changed.length > 0) for (const l of this.listeners) l(changed);
    return true;
  }

  /** Called with the names of flags whose settings changed. Returns an unsubscribe function. */
  onChange(listener: (names: string[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  names(): string[] {
    return [...new Set([...this.defaults.keys(), ...this.flags.keys()])].sort();
  }

  get size(): number {
    return this.flags.size;
  }
}

function sameFlag(a: CachedFlag | undefined, b: CachedFlag | undefined): boolean {
  if (!a || !b) return a === b;
  if (a.enabled !== b.enabled || a.rollout !== b.rollout) return false;
  const au = a.users ?? new Set<string>();
  const bu = b.users ?? new Set<string>();
  return au.size === bu.size && [...au].every((u) => bu.has(u));
}
