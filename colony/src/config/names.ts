// Application and environment names, and the colony id made from them. They
// end up in the colony id, which is the discovery mesh id (at most 63
// lowercase letters, digits and inner hyphens), so they follow its rules.
import { randomBytes } from "node:crypto";

export const nameLimits = { app: 40, env: 15 } as const;

const namePattern = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;

/** A lowercase-hyphen version of any text: "My Shop!" → "my-shop". */
export function slugify(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "");
}

/** Why `value` is not a valid application or environment name, or undefined when it is. */
export function nameProblem(value: string, kind: "app" | "env"): string | undefined {
  const max = nameLimits[kind];
  const example = kind === "app" ? "my-shop" : "dev";
  if (value === "") return "is empty";
  if (value.length > max) return `"${value}" is ${value.length} characters; at most ${max} are allowed`;
  if (!namePattern.test(value)) {
    const slug = slugify(value).slice(0, max);
    const hint = slug && slug !== value ? `try "${slug}"` : `e.g. "${example}"`;
    return `"${value}" may only contain lowercase letters, digits and hyphens, starting and ending with a letter or digit; ${hint}`;
  }
  return undefined;
}

/** `<app>-<env>-<6 random hex>`, e.g. my-shop-dev-a1b2c3. */
export function newColonyId(app: string, env: string): string {
  return `${app}-${env}-${randomBytes(3).toString("hex")}`;
}
