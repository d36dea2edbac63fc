// The agent's own identity: an Ed25519 key made on first start and kept in its
// data folder (0600), the colony key it pinned, and whether the colony has
// enrolled it. The private key never leaves this file.
import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { agentPubkeyPattern, generateIdentityKey, importIdentityKey, type IdentityKey } from "@coral/proto";

export interface AgentIdentity {
  key: IdentityKey;
  /** The colony's identity key (base64), once known: from the join token or the enrollment answer. */
  colonyPubkey: string;
  enrolled: boolean;
}

interface IdentityFile {
  version: 1;
  private_key_pkcs8: string;
  public_key: string;
  colony_pubkey: string;
  enrolled: boolean;
}

export const identityFileName = "identity.json";

export class IdentityFileError extends Error {
  override name = "IdentityFileError";
}

/** Loads the agent's identity, making a key on first start. */
export async function loadAgentIdentity(dataDir: string): Promise<AgentIdentity> {
  const path = join(dataDir, identityFileName);
  let text: string | undefined;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  if (text === undefined) {
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    const made = await generateIdentityKey();
    const identity = { key: made, colonyPubkey: "", enrolled: false };
    await writeIdentityFile(dataDir, identity, made.pkcs8);
    return identity;
  }
  let file: Partial<IdentityFile>;
  try {
    file = JSON.parse(text) as Partial<IdentityFile>;
  } catch {
    throw new IdentityFileError(`${path} is not JSON; move it away to make a new identity (the agent then needs a new invitation)`);
  }
  if (file.version !== 1 || typeof file.private_key_pkcs8 !== "string" || typeof file.public_key !== "string" || !agentPubkeyPattern.test(file.public_key))
    throw new IdentityFileError(`${path} is damaged; move it away to make a new identity (the agent then needs a new invitation)`);
  const key = await importIdentityKey(file.private_key_pkcs8);
  if (key.publicKey !== file.public_key) throw new IdentityFileError(`${path}: the public key does not match the private key`);
  // Tighten a file an older version or a copy left readable.
  await chmod(path, 0o600);
  return { key, colonyPubkey: typeof file.colony_pubkey === "string" ? file.colony_pubkey : "", enrolled: file.enrolled === true };
}

/** Records the pinned colony key and that the colony enrolled us. */
export async function saveAgentIdentity(dataDir: string, identity: AgentIdentity): Promise<void> {
  const { pkcs8 } = await exportPkcs8(identity.key);
  await writeIdentityFile(dataDir, identity, pkcs8);
}

async function exportPkcs8(key: IdentityKey): Promise<{ pkcs8: string }> {
  const bytes = new Uint8Array((await crypto.subtle.exportKey("pkcs8", key.privateKey)) as ArrayBuffer);
  return { pkcs8: Buffer.from(bytes).toString("base64") };
}

async function writeIdentityFile(dataDir: string, identity: AgentIdentity, pkcs8: string): Promise<void> {
  const file: IdentityFile = { version: 1, private_key_pkcs8: pkcs8, public_key: identity.key.publicKey, colony_pubkey: identity.colonyPubkey, enrolled: identity.enrolled };
  const path = join(dataDir, identityFileName);
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(file, null, 2) + "\n", { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, path);
}
