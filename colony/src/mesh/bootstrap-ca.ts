// The colony's own certificate authority for the bootstrap endpoint: a
// long-lived CA (kept in .coral/keys) whose SHA-256 fingerprint travels in
// join tokens, and a server certificate it signs at each start for the
// public address. Agents pin the CA by that fingerprint, so no public CA
// (and no trust in the network) is needed for first contact.
import "reflect-metadata"; // @peculiar/x509's dependency injection needs it loaded first
import { webcrypto } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, readFile, writeFile } from "node:fs/promises";
import { isIP } from "node:net";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";
import { certificateFingerprint } from "@coral/common/wireguard";

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const YEAR_MS = 365 * 86400_000;

export interface BootstrapCertificates {
  /** PEM of the CA certificate. */
  caCertPem: string;
  /** "sha256:<hex>" of the CA certificate's DER; goes into join tokens. */
  caFingerprint: string;
  /** PEM of the server certificate followed by the CA (the chain the server sends). */
  serverChainPem: string;
  serverKeyPem: string;
}

async function exportKeyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", key as unknown as webcrypto.CryptoKey));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString("base64").replace(/.{64}/g, "$&\n").trim()}\n-----END PRIVATE KEY-----\n`;
}

async function importKeyPem(pem: string): Promise<CryptoKey> {
  const der = Buffer.from(pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""), "base64");
  return (await webcrypto.subtle.importKey("pkcs8", der, ALG, true, ["sign"])) as unknown as CryptoKey;
}

function serial(): string {
  return Buffer.from(webcrypto.getRandomValues(new Uint8Array(16))).toString("hex").replace(/^[89a-f]/, "1");
}

/** Loads the CA from keysDir, creating it (0600) on first use. */
async function loadOrCreateCa(keysDir: string, colonyId: string): Promise<{ cert: x509.X509Certificate; key: CryptoKey; pem: string }> {
  const certPath = join(keysDir, "bootstrap-ca.crt");
  const keyPath = join(keysDir, "bootstrap-ca.key");
  if (existsSync(certPath) && existsSync(keyPath)) {
    const pem = await readFile(certPath, "utf8");
    return { cert: new x509.X509Certificate(pem), key: await importKeyPem(await readFile(keyPath, "utf8")), pem };
  }
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ["sign", "verify"])) as unknown as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=Coral colony CA ${colonyId}`,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 10 * YEAR_MS),
    signingAlgorithm: ALG,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    ],
  });
  const pem = cert.toString("pem");
  await writeFile(keyPath, await exportKeyPem(keys.privateKey), { mode: 0o600 });
  await writeFile(certPath, pem + "\n", { mode: 0o600 });
  await chmod(keyPath, 0o600);
  return { cert, key: keys.privateKey, pem };
}

/** The CA's fingerprint, creating the CA when missing (coral colony invite uses it). */
export async function bootstrapCaFingerprint(keysDir: string, colonyId: string): Promise<string> {
  const ca = await loadOrCreateCa(keysDir, colonyId);
  return certificateFingerprint(new Uint8Array(ca.cert.rawData));
}

/** The CA plus a fresh server certificate for `hosts` (IP addresses or names). */
export async function issueBootstrapCertificates(keysDir: string, colonyId: string, hosts: string[]): Promise<BootstrapCertificates> {
  const ca = await loadOrCreateCa(keysDir, colonyId);
  const leafKeys = (await webcrypto.subtle.generateKey(ALG, true, ["sign", "verify"])) as unknown as CryptoKeyPair;
  const names = [...new Set(hosts.filter(Boolean))].map((h) => (isIP(h) ? { type: "ip" as const, value: h } : { type: "dns" as const, value: h }));
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${colonyId} bootstrap`,
    issuer: ca.cert.subject,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + YEAR_MS),
    signingAlgorithm: ALG,
    publicKey: leafKeys.publicKey,
    signingKey: ca.key,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(names),
    ],
  });
  return {
    caCertPem: ca.pem,
    caFingerprint: certificateFingerprint(new Uint8Array(ca.cert.rawData)),
    serverChainPem: `${leaf.toString("pem")}\n${ca.pem}\n`,
    serverKeyPem: await exportKeyPem(leafKeys.privateKey),
  };
}
