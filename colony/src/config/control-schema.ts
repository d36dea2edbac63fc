// The `control:` section of .coral/config.yaml: rollback deadlines, how often
// the colony resends flags, and per service how the systemd and kubernetes
// rollback strategies reach it.
//
//   control:
//     rollback_timeout: 5m     # executing must end by then
//     verify_timeout: 2m       # then the service must report the target version, healthy
//     services:
//       api:
//         systemd: { unit: "api@{version}.service" }
//         kubernetes: { deployment: api, namespace: shop, revisions: { "1.4.0": 7 } }
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

const k8sName = /^[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?$/;
const unitPattern = /^[A-Za-z0-9@._:{}\\-]{1,256}$/;

export const controlSectionSchema = z.strictObject({
  rollback_timeout: duration("5m"),
  verify_timeout: duration("2m"),
  flag_resync_interval: duration("30s"),
  services: z
    .record(
      z.string(),
      z.strictObject({
        systemd: z
          .strictObject({
            unit: z.string().regex(unitPattern, 'must be a systemd unit name; "{version}" is replaced by the target version, e.g. "api@{version}.service"'),
          })
          .optional(),
        kubernetes: z
          .strictObject({
            deployment: z.string().regex(k8sName, "must be a Kubernetes deployment name"),
            namespace: z.string().regex(k8sName, "must be a Kubernetes namespace").default("default"),
            /** Version → deployment revision, for --to-revision. */
            revisions: z.record(z.string(), z.number().int().min(1)).default({}),
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
