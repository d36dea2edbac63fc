// A synthetic agent: speaks the real wire format to a real colony (Connect
// MeshService for Register/Heartbeat, NATS JetStream for telemetry). Used to
// test the colony before (and independently of) the real agent. It has its
// own Ed25519 key and enrolls with an invitation: given, or minted with the
// colony's local token (as coral connect does for a local colony).
import { create, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { generateIdentityKey, signRegisterRequest, type IdentityKey } from "@coral/proto";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { sleep } from "@coral/common/async";
import { HealthStatus, MeshService, RegisterRequestSchema, type RegisterRequest, type RegisterResponse } from "@coral/proto/gen/coral/mesh/v1/mesh_pb";
import { mintInvitation } from "./colony.ts";
import { TelemetryBatchSchema } from "@coral/proto/gen/coral/mesh/v1/telemetry_pb";
import { jetstream, type JetStreamClient } from "@nats-io/jetstream";
import { connect, headers, type NatsConnection } from "@nats-io/transport-node";

export interface SyntheticAgentOptions {
  colonyUrl: string;
  /** Mint a one-use invitation with this (local or admin) token at the first register. */
  localToken?: string;
  /** Or enroll with this invitation (e.g. { invitationId: "env", invitationSecret: CORAL_ENROLL_SECRET }). */
  invitation?: { invitationId: string; invitationSecret: string };
  /** The agent's key (default: a new one). */
  key?: IdentityKey;
  agentId: string;
  serviceName: string;
  port: number;
  version?: string;
}

export class SyntheticAgent implements AsyncDisposable {
  registration?: RegisterResponse;
  private nc?: NatsConnection;
  private js?: JetStreamClient;
  private token = "";
  private readonly mesh;
  private batchSeq = 0;

  constructor(readonly options: SyntheticAgentOptions) {
    const auth: Interceptor = (next) => (req) => {
      if (this.token) req.header.set("authorization", `Bearer ${this.token}`);
      return next(req);
    };
    this.mesh = createClient(MeshService, createConnectTransport({ baseUrl: options.colonyUrl, httpVersion: "1.1", interceptors: [auth] }));
  }

  private key?: IdentityKey;
  private enrolled = false;
  /** The last signed Register request, as sent (to replay or tamper with in attack tests). */
  lastRegisterRequest?: RegisterRequest;

  /** Sends a Register request as given (no signing). */
  sendRegister(request: RegisterRequest): Promise<RegisterResponse> {
    return this.mesh.register(request);
  }

  /** The agent's public key (after the first register). */
  get publicKey(): string | undefined {
    return this.key?.publicKey;
  }

  async register(): Promise<RegisterResponse> {
    this.key ??= this.options.key ?? (await generateIdentityKey());
    let invitation = this.options.invitation;
    if (!invitation && !this.enrolled && this.options.localToken)
      invitation = await mintInvitation(this.options.colonyUrl, this.options.localToken, `synthetic agent ${this.options.agentId}`);
    const request = create(RegisterRequestSchema, {
      agentId: this.options.agentId,
      serviceName: this.options.serviceName,
      port: this.options.port,
      version: this.options.version ?? "1.0.0",
      address: "127.0.0.1",
      hostname: "test-host",
    });
    await signRegisterRequest(request, this.key, this.enrolled ? undefined : invitation);
    this.lastRegisterRequest = request;
    this.registration = await this.mesh.register(request);
    this.enrolled = true;
    this.token = this.registration.agentToken;
    return this.registration;
  }

  heartbeat(health: HealthStatus = HealthStatus.HEALTHY, extra: { pid?: number; restartCount?: number; startedAt?: Date } = {}) {
    return this.mesh.heartbeat({
      agentId: this.options.agentId,
      health,
      pid: extra.pid ?? 4242,
      restartCount: extra.restartCount ?? 0,
      processStartedAt: timestampFromDate(extra.startedAt ?? new Date(Date.now() - 3_600_000)),
      resources: { cpuPercent: 12.5, memoryBytes: 64n * 1024n * 1024n, fdCount: 20, threadCount: 4 },
    });
  }

  deregister(reason = "test") {
    return this.mesh.deregister({ agentId: this.options.agentId, reason });
  }

  async connectNats(): Promise<JetStreamClient> {
    const nats = this.registration?.nats;
    if (!nats) throw new Error("register first");
    this.nc = await connect({ servers: nats.url, user: nats.user, pass: nats.password, name: this.options.agentId, inboxPrefix: nats.inboxPrefix || undefined });
    this.js = jetstream(this.nc);
    return this.js;
  }

  /** Publishes raw bytes on this agent's telemetry subject (or `subject`), as a broken or hostile agent could. */
  async publishRaw(payload: Uint8Array, options: { msgId?: string; subject?: string } = {}) {
    if (!this.js) await this.connectNats();
    const subject = options.subject ?? `${this.registration!.nats!.subjectPrefix}.telemetry`;
    return this.js!.publish(subject, payload, { ...(options.msgId ? { msgID: options.msgId } : {}), timeout: 5000 });
  }

  /** The agent's NATS connection (after connectNats), for tests that probe what an agent may do. */
  get connection(): NatsConnection | undefined {
    return this.nc;
  }

  /** Publishes one batch with a Nats-Msg-Id and waits for JetStream's ack. */
  async publish(
    batch: Pick<MessageInitShape<typeof TelemetryBatchSchema>, "metrics" | "events" | "connections" | "batchId">,
    subjectAgentId = this.options.agentId,
    options: { retryForMs?: number } = {},
  ) {
    if (!this.js) await this.connectNats();
    const full = create(TelemetryBatchSchema, {
      batchId: `${this.options.agentId}-${Date.now()}-${this.batchSeq++}`,
      createdAt: timestampFromDate(new Date()),
      ...batch,
      agentId: this.options.agentId,
      serviceName: this.options.serviceName,
    });
    const h = headers();
    h.set("Nats-Msg-Id", full.batchId);
    const prefix = this.registration!.nats!.subjectPrefix.replace(`.agent.${this.options.agentId}`, `.agent.${subjectAgentId}`);
    const payload = toBinary(TelemetryBatchSchema, full);
    // Like the real agent's outbox: retry the same batch (same Nats-Msg-Id)
    // through outages; the colony stores it once. Permission errors are final.
    const deadline = Date.now() + (options.retryForMs ?? 0);
    for (;;) {
      try {
        const ack = await this.js!.publish(`${prefix}.telemetry`, payload, { headers: h, timeout: 5000 });
        return { batchId: full.batchId, ack };
      } catch (err) {
        if (Date.now() > deadline || /permission/i.test(String(err))) throw err;
        await sleep(250);
      }
    }
  }

  async [Symbol.asyncDispose]() {
    await this.nc?.close();
  }
}
