// What makes a shared secret unfit (e.g. the all-zero placeholder a manifest
// once shipped): its own module, so the CLI's doctor and the deploy tests can
// use it without loading the colony.

/** Why a 32-byte hex secret is weak, or null: wrong length, or little variety (all zeros, a repeated pattern). */
export function weakSecretProblem(secretHex: string): string | null {
  if (!/^[0-9a-f]{64}$/.test(secretHex)) return "must be 64 hex characters (32 random bytes: openssl rand -hex 32)";
  const bytes = new Set<string>();
  for (let i = 0; i < 64; i += 2) bytes.add(secretHex.slice(i, i + 2));
  if (bytes.size < 16) return "is not random (too few distinct bytes, e.g. all zeros or a repeated pattern); make one with: openssl rand -hex 32";
  return null;
}
