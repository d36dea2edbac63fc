// The colony tables people may read with `coral query`: what the read
// commands show anyway (telemetry, topology, events, insights, flags,
// rollbacks, debug sessions, audit). Never the credentials (api_tokens,
// invitations, agent_identities), actor internals or bookkeeping. A table
// added later stays unreadable until it is listed here.
export const queryableTables: readonly string[] = [
  "services",
  "agents",
  "metric_summaries",
  "events",
  "insights",
  "baselines",
  "service_connections",
  "connection_observations",
  "mesh_peers",
  "feature_flags",
  "rollback_history",
  "sdk_reports",
  "service_versions",
  "debug_sessions",
  "audit_log",
  "dead_letters",
  "dead_letter_counts",
  "ingested_batches",
  "profile_stacks",
  "profile_minutes",
  "profile_stack_frames",
];

/** Table functions a query may use in FROM: they generate values, they read nothing. */
export const queryableTableFunctions: readonly string[] = ["range", "generate_series", "unnest"];
