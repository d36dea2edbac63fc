// `coral topology` and `coral topology --export topology.dot`:
//
//   SERVICE TOPOLOGY
//   ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━
//
//   frontend (127.0.0.1:3000)
//     → api (127.0.0.1:8080)         [12 connections]
//     → auth (127.0.0.1:8081)        [120/min]
//     → cdn.example.com:443          [external, 2 connections]
//
// "12 connections" is the peak held open at once; "120/min" the connections
// opened during the last minute, shown for edges whose agent counts them (it
// sees short-lived connections with eBPF).
//
//   Detected Dependencies: 2
//   External Services: 1 (cdn.example.com:443)
import type { GetTopologyResponse, ServiceInfo, TopologyEdge } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { noComponentsHint } from "./status.ts";
import { colors, compareNames, hostPort, padEnd, plural, rule, visibleWidth, type FormatOptions } from "./text.ts";

function label(name: string, services: ReadonlyMap<string, ServiceInfo>): string {
  const service = services.get(name);
  const where = service ? hostPort(service.address, service.port) : "";
  return where ? `${name} (${where})` : name;
}

function byName(a: { name: string }, b: { name: string }): number {
  return compareNames(a.name, b.name);
}

export function formatTopology(res: GetTopologyResponse, options: FormatOptions): string {
  const c = colors(options.color);
  const services = new Map(res.services.map((s) => [s.name, s]));
  const title = "SERVICE TOPOLOGY";
  if (res.services.length === 0 && res.edges.length === 0) return [c.bold(title), rule(40), "", noComponentsHint].join("\n");

  const outgoing = new Map<string, TopologyEdge[]>();
  for (const edge of res.edges) outgoing.set(edge.fromService, [...(outgoing.get(edge.fromService) ?? []), edge]);
  const sources = [...new Set([...res.services.map((s) => s.name), ...outgoing.keys()])].sort(compareNames);

  const blocks: string[][] = [];
  const quiet: string[] = [];
  const targetWidth = Math.max(0, ...res.edges.map((e) => visibleWidth(e.external ? e.toService : label(e.toService, services))));
  for (const name of sources) {
    const edges = (outgoing.get(name) ?? []).sort((a, b) => Number(a.external) - Number(b.external) || compareNames(a.toService, b.toService));
    if (edges.length === 0) {
      quiet.push(name);
      continue;
    }
    blocks.push([
      c.bold(label(name, services)),
      ...edges.map((e) => {
        const target = e.external ? e.toService : label(e.toService, services);
        const parts = e.connectionCount > 0n || e.openedTotal === 0n ? [plural(e.connectionCount, "connection")] : [];
        if (e.openedTotal > 0n) parts.push(`${e.openedLastMinute}/min`);
        const count = parts.join(", ");
        const note = e.external ? `[external, ${count}]` : `[${count}]`;
        return `  → ${padEnd(target, targetWidth + 2)}${c.dim(note)}`;
      }),
    ]);
  }

  const externals = [...new Set(res.edges.filter((e) => e.external).map((e) => e.toService))].sort();
  const lines = [c.bold(title), rule(40), ""];
  if (blocks.length === 0) lines.push("No connections observed yet. They appear once components talk to each other (agents report every minute).", "");
  for (const block of blocks) lines.push(...block, "");
  if (quiet.length > 0 && blocks.length > 0) lines.push(`No outgoing connections: ${quiet.join(", ")}`, "");
  lines.push(`Detected Dependencies: ${res.edges.length}`);
  lines.push(`External Services: ${externals.length}${externals.length > 0 ? ` (${externals.join(", ")})` : ""}`);
  return lines.join("\n");
}

function dotId(text: string): string {
  return `"${text.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`;
}

/** Graphviz dot: services as boxes, external dependencies as dashed ellipses, edges labelled with connection counts. */
export function topologyToDot(res: GetTopologyResponse): string {
  const lines = ["digraph coral {", "  rankdir=LR;", '  node [shape=box, style=rounded, fontname="Helvetica"];', '  edge [fontname="Helvetica"];'];
  const services = [...res.services].sort(byName);
  const known = new Set(services.map((s) => s.name));
  for (const s of services) {
    const where = hostPort(s.address, s.port);
    lines.push(`  ${dotId(s.name)} [label=${dotId(where ? `${s.name}\n${where}` : s.name)}];`);
  }
  const referenced = new Set<string>();
  for (const e of res.edges) {
    if (!e.external && !known.has(e.toService)) referenced.add(e.toService);
    if (!known.has(e.fromService)) referenced.add(e.fromService);
  }
  for (const name of [...referenced].sort()) lines.push(`  ${dotId(name)};`);
  const externals = [...new Set(res.edges.filter((e) => e.external).map((e) => e.toService))].sort();
  for (const name of externals) lines.push(`  ${dotId(name)} [shape=ellipse, style=dashed];`);
  for (const e of res.edges) {
    const label = e.openedTotal > 0n ? `${e.connectionCount} (${e.openedLastMinute}/min)` : String(e.connectionCount);
    lines.push(`  ${dotId(e.fromService)} -> ${dotId(e.toService)} [label=${dotId(label)}];`);
  }
  lines.push("}");
  return `${lines.join("\n")}\n`;
}
