// Route normalising and the per-service route cap live in @coral/common, so the
// SDK's middleware names routes exactly as the eBPF tracer does.
export { normaliseRoute, RouteCap, DEFAULT_ROUTE_CAP, OTHER_ROUTE, MAX_ROUTE_LENGTH } from "@coral/proto/http-routes";
