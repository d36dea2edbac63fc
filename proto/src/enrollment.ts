// How an agent proves who it is to its colony (see mesh.proto):
// - its own Ed25519 key signs every Register request (bound to the whole
//   request, a timestamp and a nonce);
// - the first time, it also proves it holds an invitation with an HMAC keyed
//   by a hash of the invitation secret, so neither the secret nor the key
//   crosses the wire, and the colony stores only the key;
// - the colony answers with an HMAC of its own identity key under the same
//   invitation, so an agent without a pinned colony key can trust it.
import { fromBase64, toBase64 } from "./base64.ts";
import { create, toBinary } from "@bufbuild/protobuf";
import { AgentSignatureSchema, InvitationProofSchema, RegisterRequestSchema, type RegisterRequest } from "../gen/coral/mesh/v1/mesh_pb.ts";
import { sha256Hex } from "./colony-call.ts";
import type { IdentityKey } from "./signing.ts";

const encoder = new TextEncoder();

function hex(bytes: ArrayBuffer | Uint8Array): string {
  return [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function hexToBytes(text: string): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(text.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(text.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}

const utf8 = (text: string) => encoder.encode(text) as Uint8Array<ArrayBuffer>;

export function randomHex(byteCount: number): string {
  return hex(crypto.getRandomValues(new Uint8Array(byteCount)));
}

/** Invitation ids: short, URL- and log-safe; "env" is the standing invitation from CORAL_ENROLL_SECRET. */
export const invitationIdPattern = /^[a-z0-9]{3,32}$/;
export const invitationSecretPattern = /^[0-9a-f]{64}$/;
export const agentPubkeyPattern = /^[A-Za-z0-9+/]{43}=$/;
export const noncePattern = /^[0-9a-f]{32,64}$/;

/** The HMAC key the colony keeps for an invitation (hex); the secret itself is never stored. */
export function invitationKey(secretHex: string): Promise<string> {
  return sha256Hex(utf8(`coral-invitation-v1\n${secretHex}`));
}

async function hmacHex(keyHex: string, message: string): Promise<string> {
  const key = await crypto.subtle.importKey("raw", hexToBytes(keyHex), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return hex(await crypto.subtle.sign("HMAC", key, utf8(message)));
}

async function hmacEquals(keyHex: string, message: string, macHex: string): Promise<boolean> {
  if (!/^[0-9a-f]{64}$/.test(macHex)) return false;
  const key = await crypto.subtle.importKey("raw", hexToBytes(keyHex), { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
  return crypto.subtle.verify("HMAC", key, hexToBytes(macHex), utf8(message));
}

export interface EnrollmentContext {
  agentId: string;
  agentPubkey: string;
  timestampMs: bigint;
  nonce: string;
}

const enrollMessage = (c: EnrollmentContext) => `coral-enroll-v1\n${c.agentId}\n${c.agentPubkey}\n${c.timestampMs}\n${c.nonce}`;
const colonyMessage = (c: EnrollmentContext, colonyPubkey: string) => `coral-enroll-colony-v1\n${c.agentId}\n${c.agentPubkey}\n${colonyPubkey}\n${c.nonce}`;

export function invitationProof(keyHex: string, context: EnrollmentContext): Promise<string> {
  return hmacHex(keyHex, enrollMessage(context));
}

/** Constant-time check of an invitation proof. */
export function checkInvitationProof(keyHex: string, context: EnrollmentContext, macHex: string): Promise<boolean> {
  return hmacEquals(keyHex, enrollMessage(context), macHex);
}

export function colonyProof(keyHex: string, context: EnrollmentContext, colonyPubkey: string): Promise<string> {
  return hmacHex(keyHex, colonyMessage(context, colonyPubkey));
}

export function checkColonyProof(keyHex: string, context: EnrollmentContext, colonyPubkey: string, macHex: string): Promise<boolean> {
  return hmacEquals(keyHex, colonyMessage(context, colonyPubkey), macHex);
}

const registerMessage = (agentId: string, timestampMs: bigint, nonce: string, digestHex: string) =>
  utf8(`coral-agent-register-v1\n${agentId}\n${timestampMs}\n${nonce}\n${digestHex}`);

/** Signs a Register request's digest (SHA-256 of the request without its signature) with the agent's key. */
export async function signRegistration(key: IdentityKey, agentId: string, digestHex: string, timestampMs: bigint, nonce: string): Promise<string> {
  return toBase64(new Uint8Array(await crypto.subtle.sign("Ed25519", key.privateKey, registerMessage(agentId, timestampMs, nonce, digestHex))));
}

export async function verifyRegistration(agentPubkey: string, agentId: string, digestHex: string, timestampMs: bigint, nonce: string, signature: string): Promise<boolean> {
  try {
    const key = await crypto.subtle.importKey("raw", fromBase64(agentPubkey), "Ed25519", false, ["verify"]);
    return await crypto.subtle.verify("Ed25519", key, fromBase64(signature), registerMessage(agentId, timestampMs, nonce, digestHex));
  } catch {
    return false;
  }
}

/** What an agent's signature covers in a WireGuard enrollment (besides id, time and nonce). */
export function meshEnrollDigest(agentId: string, wireguardPubkey: string): Promise<string> {
  return sha256Hex(utf8(`coral-mesh-enroll-v1\n${agentId}\n${wireguardPubkey}`));
}

/**
 * Signs a Register request in place with the agent's key, adding the
 * invitation proof first when given (the signature covers it).
 */
export async function signRegisterRequest(request: RegisterRequest, key: IdentityKey, invitation?: { invitationId: string; invitationSecret: string }): Promise<{ invitationKey: string; context: EnrollmentContext }> {
  const timestampMs = BigInt(Date.now());
  const nonce = randomHex(16);
  request.agentPubkey = key.publicKey;
  request.signature = undefined;
  const context: EnrollmentContext = { agentId: request.agentId, agentPubkey: key.publicKey, timestampMs, nonce };
  const keyHex = invitation ? await invitationKey(invitation.invitationSecret) : "";
  request.invitation = invitation ? create(InvitationProofSchema, { invitationId: invitation.invitationId, hmac: await invitationProof(keyHex, context) }) : undefined;
  const digest = await sha256Hex(toBinary(RegisterRequestSchema, request));
  request.signature = create(AgentSignatureSchema, { timestampMs, nonce, signature: await signRegistration(key, request.agentId, digest, timestampMs, nonce) });
  return { invitationKey: keyHex, context };
}
