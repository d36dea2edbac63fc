// The `control:` section of .coral/config.yaml: rollback deadlines, how often
// the colony resends flags, and per service what the colony knows for the
// kubernetes strategy. What a rollback runs (systemd unit, deployment) is the
// agent's own configuration (coral connect --rollback-*), never the colony's.
//
//   control:
//     rollback_timeout: 5m     # executing must end by then
//     verify_timeout: 2m       # then the service must report the target version, healthy
//     services:
//       api:
//         kubernetes: { revisions: { "1.4.0": 7 } }   # version → deployment revision, for --to-revision
import { z } from "zod";
import { parseDuration } from "@coral/common/duration";

const DURATION = "must be a duration like 30s, 5m or 1h";
const duration = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .superRefine((value, ctx) => {
      const parsed = parseDuration(value);
      if ("error" in parsed || parsed.ms <= 0) ctx.addIssue({ code: "custom", message: `${DURATION} (got "${value}")` });
    });

/** A key that used to name what agents run: now refused, saying where it went. */
const movedToAgent = (flag: string) =>
  z
    .unknown()
    .optional()
    .superRefine((value, ctx) => {
      if (value !== undefined)
        ctx.addIssue({ code: "custom", message: `agents now run only what their own configuration names: remove this and start the service's agent with coral connect <service> ${flag}` });
    });

export const controlSectionSchema = z.strictObject({
  rollback_timeout: duration("5m"),
  verify_timeout: duration("2m"),
  flag_resync_interval: duration("30s"),
  services: z
    .record(
      z.string(),
      z.strictObject({
        systemd: movedToAgent("--rollback-systemd-unit UNIT"),
        kubernetes: z
          .strictObject({
            /** Version → deployment revision, sent with the intent for --to-revision. */
            revisions: z.record(z.string(), z.number().int().min(1).max(4_294_967_295)).default({}),
            deployment: movedToAgent("--rollback-k8s-deployment NAME"),
            namespace: movedToAgent("--rollback-k8s-namespace NS"),
          })
          .optional(),
      }),
    )
    .default({}),
});

export type ControlSectionFile = z.output<typeof controlSectionSchema>;

export interface ControlConfig extends ControlSectionFile {
  rollback_timeout_ms: number;
  verify_timeout_ms: number;
  flag_resync_interval_ms: number;
}

function ms(text: string): number {
  const parsed = parseDuration(text);
  if ("error" in parsed) throw new Error(parsed.error);
  return parsed.ms;
}

export function resolveControlConfig(file: ControlSectionFile): ControlConfig {
  return {
    ...file,
    rollback_timeout_ms: ms(file.rollback_timeout),
    verify_timeout_ms: ms(file.verify_timeout),
    flag_resync_interval_ms: ms(file.flag_resync_interval),
  };
}
