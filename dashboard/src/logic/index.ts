// The dashboard's view logic, without the DOM: unit-tested in tests/dashboard.
export * from "./format.ts";
export * from "./graph.ts";
export * from "./series.ts";
export * from "./control.ts";
export * from "./debug.ts";
export * from "./flame.ts";
export * from "./requests.ts";
export * from "./telemetry.ts";
