// A synthetic agent: speaks the real wire format to a real colony (Connect
// MeshService for Register/Heartbeat, NATS JetStream for telemetry). Used to
// test the colony before (and independently of) the real agent.
import { create, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { sleep } from "@coral/common/async";
import { makeSecretProof } from "@coral/proto";
import { HealthStatus, MeshService, type RegisterResponse } from "@coral/proto/gen/coral/mesh/v1/mesh_pb";
import { TelemetryBatchSchema } from "@coral/proto/gen/coral/mesh/v1/telemetry_pb";
import { jetstream, type JetStreamClient } from "@nats-io/jetstream";
import { connect, headers, type NatsConnection } from "@nats-io/transport-node";

export interface SyntheticAgentOptions {
  colonyUrl: string;
  secret: string;
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

  async register(): Promise<RegisterResponse> {
    const proof = await makeSecretProof(this.options.secret, this.options.agentId);
    this.registration = await this.mesh.register({
      agentId: this.options.agentId,
      serviceName: this.options.serviceName,
      port: this.options.port,
      version: this.options.version ?? "1.0.0",
      address: "127.0.0.1",
      hostname: "test-host",
      proof,
    });
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
    this.nc = await connect({ servers: nats.url, user: nats.user, pass: nats.password, name: this.options.agentId });
    this.js = jetstream(this.nc);
    return this.js;
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
