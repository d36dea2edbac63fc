// ControlService handlers: flags and rollbacks for the CLI. Auth is the
// colony's token interceptor; changes need an admin token (see api/auth.ts).
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { ControlService } from "@coral/proto/gen/coral/control/v1/control_pb";
import { callerKey } from "../auth/index.ts";
import type { ControlPlane } from "./plane.ts";
import { flagChangeProblem } from "./flags.ts";

const invalid = (message: string) => new ConnectError(message, Code.InvalidArgument);
const servicePattern = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

function caller(ctx: HandlerContext): string {
  return ctx.values.get(callerKey)?.name ?? "unknown";
}

export function controlService(control: ControlPlane, audit: (actor: string, action: string, target: string, details: Record<string, unknown>) => Promise<void>) {
  const impl: ServiceImpl<typeof ControlService> = {
    async listFlags(req) {
      if (req.service && !servicePattern.test(req.service)) throw invalid(`service: "${req.service.slice(0, 40)}" is not a component name`);
      return { flags: await control.flags.list(req.service || undefined) };
    },

    async setFlag(req, ctx) {
      if (req.enabled === undefined && req.rolloutPercentage === undefined && !req.setUserIds)
        throw invalid("nothing to change: set enabled, rollout_percentage or user_ids");
      const change = {
        service: req.service,
        name: req.name,
        enabled: req.enabled,
        rollout: req.rolloutPercentage,
        userIds: req.setUserIds ? [...new Set(req.userIds)] : undefined,
        by: caller(ctx),
      };
      const problem = flagChangeProblem(change);
      if (problem) throw invalid(problem);
      const res = await control.flags.set(change);
      await audit(change.by, "flag.set", `${req.service}/${req.name}`, {
        enabled: res.flag.enabled,
        rollout_percentage: res.flag.rolloutPercentage,
        user_ids: res.flag.userIds,
      });
      return { flag: res.flag, agentsNotified: res.notified, unreachable: res.unreachable };
    },

    async startRollback(req, ctx) {
      if (!servicePattern.test(req.service)) throw invalid(`service: "${req.service.slice(0, 40)}" is not a component name, e.g. api`);
      const plan = await control.rollbacks.plan(req.service, req.targetVersion, req.strategy);
      if (req.dryRun) {
        return {
          dryRun: true,
          rollback: {
            service: plan.service,
            state: "planned",
            fromVersion: plan.fromVersion,
            targetVersion: plan.targetVersion,
            strategy: plan.strategy,
            initiatedBy: caller(ctx),
            plan: plan.plan,
            undoPlan: plan.undo,
            recordRevision: plan.recordRevision,
          },
        };
      }
      const id = await control.rollbacks.start(plan, caller(ctx));
      return { dryRun: false, rollback: (await control.rollbacks.get(id)) ?? undefined };
    },

    async getRollback(req) {
      const r = await control.rollbacks.get(req.rollbackId);
      if (!r) throw new ConnectError(`no rollback ${req.rollbackId.slice(0, 40)} (see coral rollback history)`, Code.NotFound);
      return { rollback: r };
    },

    async *watchRollback(req, ctx) {
      if (!(await control.rollbacks.get(req.rollbackId))) throw new ConnectError(`no rollback ${req.rollbackId.slice(0, 40)}`, Code.NotFound);
      for await (const r of control.rollbacks.watch(req.rollbackId, ctx.signal)) yield { rollback: r };
    },

    async listRollbacks(req) {
      if (req.service && !servicePattern.test(req.service)) throw invalid(`service: "${req.service.slice(0, 40)}" is not a component name`);
      if (req.limit > 1000) throw invalid("limit: at most 1000");
      return { rollbacks: await control.rollbacks.list(req.service, req.limit || 20) };
    },
  };
  return impl;
}
