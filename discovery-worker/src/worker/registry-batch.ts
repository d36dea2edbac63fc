// The mesh objects' calls of one registration batch (registration-batch.ts):
// registrations that go to the same Durable Object reach it in one RPC
// (MeshRegistry.registerMany). Per registration, an RPC (both sides'
// serialization, a turn of the object) cost more worker CPU than anything
// but the signature check (bench/BENCHMARKS.md, issue 26). The batch sends
// once every registration of it has either asked for its object or finished
// without (refused before, e.g. as invalid), so none waits on a timer.
import type { RegisterOutcome, Registration } from "./mesh-registry.ts";
import { meshObject } from "./mesh-object.ts";
import type { Result } from "./result.ts";

/** Stores a validated registration in its mesh's object. */
export type Registrar = (env: DiscoveryEnv, meshId: string, registration: Registration) => Promise<Result<RegisterOutcome>>;

/** One RPC for the one registration: what every registration outside a batch does. */
export const registerAlone: Registrar = (env, meshId, registration) => {
  const { stub } = meshObject(env, meshId);
  return registration.kind === "colony" ? stub.registerColony(registration.record) : stub.registerAgent(registration.record);
};

interface Waiting {
  registration: Registration;
  answer(result: Result<RegisterOutcome>): void;
  fail(err: unknown): void;
}

/** One registration of a batch: its registrar, and done() once it is answered (whether it asked or not). */
export interface BatchItem {
  register: Registrar;
  done(): void;
}

export class RegistryBatch {
  private readonly objects = new Map<string, { stub: ReturnType<typeof meshObject>["stub"]; waiting: Waiting[] }>();
  private sent = false;

  /** `items`: the registrations of the batch, each of which takes item() once. */
  constructor(private unsettled: number) {}

  item(): BatchItem {
    let settled = false;
    const settle = () => {
      if (settled) return;
      settled = true;
      if (--this.unsettled === 0) this.send();
    };
    return {
      register: (env, meshId, registration) => {
        // A second call of one item, or one after the send, goes on its own.
        if (settled || this.sent) return registerAlone(env, meshId, registration);
        const { name, stub } = meshObject(env, meshId);
        let object = this.objects.get(name);
        if (!object) this.objects.set(name, (object = { stub, waiting: [] }));
        const waiting = object.waiting;
        const answer = new Promise<Result<RegisterOutcome>>((answer, fail) => waiting.push({ registration, answer, fail }));
        settle();
        return answer;
      },
      done: settle,
    };
  }

  private send(): void {
    this.sent = true;
    for (const { stub, waiting } of this.objects.values()) {
      stub.registerMany(waiting.map((w) => w.registration)).then(
        (results) => {
          waiting.forEach((w, i) => {
            const result = results[i];
            if (result) w.answer(result);
            else w.fail(new Error(`the mesh object answered ${results.length} of ${waiting.length} registrations`));
          });
        },
        // The RPC itself failed: each registration fails as its own RPC would have.
        (err: unknown) => waiting.forEach((w) => w.fail(err)),
      );
    }
    this.objects.clear();
  }
}
