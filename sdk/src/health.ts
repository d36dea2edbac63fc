// Runs the app's health checks, each bounded by a timeout; the overall
// status is the worst component's.
import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { GetHealthResponse_Status as Status, GetHealthResponseSchema, type ComponentHealth, type GetHealthResponse } from "@coral/proto/gen/coral/sdk/v1/sdk_pb";

export type HealthState = "healthy" | "degraded" | "unhealthy";
/** A check resolves (healthy), throws (unhealthy, with its message), or says more. */
export type HealthCheck = () => Promise<void | boolean | { status: HealthState; message?: string; metadata?: Record<string, string> }>;

const statusOf: Record<HealthState, Status> = { healthy: Status.HEALTHY, degraded: Status.DEGRADED, unhealthy: Status.UNHEALTHY };
const rank = (s: Status) => (s === Status.UNHEALTHY ? 3 : s === Status.DEGRADED ? 2 : s === Status.HEALTHY ? 1 : 0);

export class HealthRegistry {
  private readonly lastSuccess = new Map<string, Timestamp>();

  constructor(
    private readonly checks: Record<string, HealthCheck>,
    private readonly timeoutMs = 2000,
  ) {}

  async run(component = ""): Promise<GetHealthResponse> {
    const names = Object.keys(this.checks).filter((n) => !component || n === component);
    const components = await Promise.all(names.map((n) => this.runOne(n)));
    // No checks registered: the app answers, so it is healthy.
    const worst = components.reduce((w, c) => (rank(c.status) > rank(w) ? c.status : w), Status.HEALTHY);
    return create(GetHealthResponseSchema, {
      overallStatus: worst,
      components,
      message: component && names.length === 0 ? `no health check named ${component}` : "",
      checkedAt: timestampFromDate(new Date()),
    });
  }

  private async runOne(name: string): Promise<ComponentHealth> {
    const started = performance.now();
    let status = Status.HEALTHY;
    let message = "";
    let metadata: Record<string, string> = {};
    let timer: NodeJS.Timeout | undefined;
    try {
      const result = await Promise.race([
        this.checks[name]!(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`timed out after ${this.timeoutMs} ms`)), this.timeoutMs);
        }),
      ]);
      if (result === false) status = Status.UNHEALTHY;
      else if (result && typeof result === "object") {
        status = statusOf[result.status] ?? Status.UNSPECIFIED;
        message = result.message ?? "";
        metadata = result.metadata ?? {};
      }
    } catch (err) {
      status = Status.UNHEALTHY;
      message = err instanceof Error ? err.message : String(err);
    } finally {
      clearTimeout(timer);
    }
    const now = timestampFromDate(new Date());
    if (status === Status.HEALTHY) this.lastSuccess.set(name, now);
    return {
      $typeName: "coral.sdk.v1.ComponentHealth",
      name,
      status,
      message,
      metadata,
      responseTime: durationFromMs(Math.round(performance.now() - started)),
      lastSuccess: this.lastSuccess.get(name),
    };
  }
}
