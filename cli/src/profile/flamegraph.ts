// A flame graph as a standalone SVG (no script: it opens anywhere, safely):
// the root at the bottom, each frame as wide as its share of the samples,
// callees above their callers, a tooltip (title) on every box. The layout
// follows Brendan Gregg's flamegraph.pl; no Perl is needed.
import type { CpuProfile } from "@coral/proto/gen/coral/agent/v1/profile_pb";
import { flameTree, type FlameNode } from "./analyze.ts";
import { flameDeltas } from "./diff.ts";

export interface FlameGraphOptions {
  title?: string;
  width?: number;
  /** Boxes narrower than this (px) are left out, as flamegraph.pl does. */
  minWidth?: number;
  /**
   * Draws a differential graph: the profile's shape, each box red where its
   * share of samples grew since this baseline and blue where it shrank.
   */
  baseline?: CpuProfile;
}

const frameHeight = 16;
const fontSize = 11;
const charWidth = fontSize * 0.59;
const pad = { top: 40, bottom: 24, side: 10 };

const escapeXml = (s: string) => s.replace(/[<>&"']/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&#39;" })[c]!);

/** A stable warm colour per function name; kernel frames orange, processes grey. */
function colour(node: FlameNode, depth: number): string {
  if (depth <= 1) return "rgb(200,200,200)";
  let h = 0;
  for (const c of node.name) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  if (node.kernel) return `rgb(230,${120 + (h % 60)},${40 + (h % 30)})`;
  return `rgb(${205 + (h % 50)},${70 + ((h >>> 8) % 130)},${40 + ((h >>> 16) % 40)})`;
}

/** Red (grew) or blue (shrank), deeper the larger the change against the largest one; near white when unchanged. */
function diffColour(delta: number, maxAbs: number): string {
  const k = maxAbs > 0 ? Math.min(1, Math.abs(delta) / maxAbs) : 0;
  const fade = Math.round(235 - 175 * k);
  if (Math.abs(delta) < 0.005) return "rgb(235,235,235)";
  return delta > 0 ? `rgb(255,${fade},${fade})` : `rgb(${fade},${fade},255)`;
}

/** The SVG text of `profile`'s flame graph. */
export function flameGraphSvg(profile: CpuProfile, options: FlameGraphOptions = {}): string {
  const width = options.width ?? 1200;
  const minWidth = options.minWidth ?? 0.3;
  const root = flameTree(profile);
  const usable = width - 2 * pad.side;
  const perSample = root.value > 0 ? usable / root.value : 0;
  const boxes: { node: FlameNode; depth: number; x: number; w: number }[] = [];
  let maxDepth = 0;
  const walk = (node: FlameNode, depth: number, x: number) => {
    const w = node.value * perSample;
    if (w < minWidth) return;
    boxes.push({ node, depth, x, w });
    maxDepth = Math.max(maxDepth, depth);
    let cx = x;
    for (const c of node.children) {
      walk(c, depth + 1, cx);
      cx += c.value * perSample;
    }
  };
  walk(root, 0, pad.side);
  const deltas = options.baseline ? flameDeltas(flameTree(options.baseline), root) : undefined;
  // Colours scale to the largest change drawn, so a small shift still shows.
  const maxAbs = deltas ? Math.max(0, ...boxes.filter((b) => b.depth > 0).map((b) => Math.abs(deltas.get(b.node) ?? 0))) : 0;
  const height = pad.top + (maxDepth + 1) * frameHeight + pad.bottom;
  const total = root.value;
  const title = options.title ?? "CPU flame graph";
  const out: string[] = [
    `<?xml version="1.0" standalone="no"?>`,
    `<svg version="1.1" xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Verdana, sans-serif" font-size="${fontSize}">`,
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#fdfdf6"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="16">${escapeXml(title)}</text>`,
    `<text x="${pad.side}" y="${height - 8}" fill="#555">${escapeXml(`${total.toLocaleString("en-US")} samples at ${profile.hz} Hz over ${(profile.durationMs / 1000).toFixed(1)}s (${profile.method || "ebpf"}); width is the share of samples, callers below callees${deltas ? `; red: a larger share than in the baseline (${Number(options.baseline!.totalSamples).toLocaleString("en-US")} samples), blue: smaller` : ""}`)}</text>`,
  ];
  for (const { node, depth, x, w } of boxes) {
    const y = height - pad.bottom - (depth + 1) * frameHeight;
    const share = total > 0 ? (100 * node.value) / total : 0;
    const label = depth === 0 ? `all (${total.toLocaleString("en-US")} samples)` : node.name;
    const delta = deltas?.get(node);
    const change = delta === undefined ? "" : ` (${delta >= 0 ? "+" : "−"}${Math.abs(delta).toFixed(2)} points)`;
    const tip = `${label}${node.module ? ` (${node.module})` : ""}: ${node.value.toLocaleString("en-US")} samples, ${share.toFixed(2)}%${change}`;
    const fill = delta === undefined ? colour(node, depth) : depth === 0 ? "rgb(200,200,200)" : diffColour(delta, maxAbs);
    out.push(`<g><title>${escapeXml(tip)}</title><rect x="${x.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${frameHeight - 1}" rx="2" fill="${fill}"/>`);
    const fits = Math.floor((w - 6) / charWidth);
    if (fits >= 3) {
      const text = label.length <= fits ? label : `${label.slice(0, fits - 2)}..`;
      out.push(`<text x="${(x + 3).toFixed(1)}" y="${y + frameHeight - 4}">${escapeXml(text)}</text>`);
    }
    out.push(`</g>`);
  }
  out.push(`</svg>`, "");
  return out.join("\n");
}
