// Query: read-only SQL as `coral query` runs it, on the colony's DuckDB or on
// one component's raw store on its agent (SQLite). The colony checks and
// audits every statement; a read session is enough. The tables and their
// columns are listed beside the editor; Ctrl+Enter runs.
import { useEffect, useState } from "preact/hooks";
import type { QueryResponse } from "@coral/proto/gen/coral/colony/v1/query_pb";
import { query } from "../api.ts";
import { useLive } from "../live.ts";
import { useAsync } from "../use-async.ts";

const examples: Record<"duckdb" | "sqlite", string> = {
  duckdb: "SELECT service_id, event_type, count(*) AS n\nFROM events\nGROUP BY ALL\nORDER BY n DESC\nLIMIT 20",
  sqlite: "SELECT metric_name, count(*) AS n, avg(value) AS mean\nFROM metrics\nGROUP BY metric_name",
};

const numeric = /^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UBIGINT|UINTEGER|FLOAT|DOUBLE|REAL|DECIMAL.*|INT)$/i;

export function QueryView() {
  const { status } = useLive();
  const services = [...new Set(status?.services.map((s) => s.name) ?? [])].sort();
  const [source, setSource] = useState("");
  const [sql, setSql] = useState(examples.duckdb);
  const [edited, setEdited] = useState(false);
  const [result, setResult] = useState<QueryResponse | undefined>();
  const [error, setError] = useState("");
  const [running, setRunning] = useState(false);
  const schema = useAsync(() => query.getQuerySchema({ serviceName: source }), [source]);
  // Until the person types, the example follows the engine.
  useEffect(() => {
    if (!edited) setSql(source ? examples.sqlite : examples.duckdb);
  }, [source, edited]);

  const run = async () => {
    setRunning(true);
    setError("");
    try {
      setResult(await query.query({ sql, serviceName: source, maxRows: 1000 }));
    } catch (err) {
      setResult(undefined);
      setError(err instanceof Error ? err.message.replace(/^\[[a-z_]+\] /, "") : String(err));
    } finally {
      setRunning(false);
    }
  };

  return (
    <div class="query">
      <div class="toolbar">
        <h2>Query</h2>
        <label>
          on{" "}
          <select value={source} data-testid="query-source" onChange={(e) => setSource((e.target as HTMLSelectElement).value)}>
            <option value="">the colony (DuckDB)</option>
            {services.map((n) => (
              <option value={n}>{n}'s agent (SQLite)</option>
            ))}
          </select>
        </label>
        <span class="muted">read-only: one SELECT, at most 1,000 rows, 10 s; every query is audited</span>
      </div>
      <div class="query-layout">
        <div>
          <textarea
            class="sql"
            data-testid="query-sql"
            rows={8}
            spellcheck={false}
            value={sql}
            onInput={(e) => {
              setEdited(true);
              setSql((e.target as HTMLTextAreaElement).value);
            }}
            onKeyDown={(e) => {
              if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
                e.preventDefault();
                void run();
              }
            }}
          />
          <div class="toolbar">
            <button data-testid="query-run" disabled={running || sql.trim() === ""} onClick={() => void run()}>
              {running ? "Running…" : "Run (Ctrl+Enter)"}
            </button>
            {result && (
              <span class="muted" data-testid="query-summary">
                {result.rows.length} row{result.rows.length === 1 ? "" : "s"} from {result.source} in {result.elapsedMs} ms
                {result.truncated && (result.truncatedBy === "bytes" ? ", cut at 4 MiB" : ", more rows exist: add a LIMIT or aggregate")}
              </span>
            )}
          </div>
          {error && (
            <p class="error" data-testid="query-error">
              {error}
            </p>
          )}
          {result && result.columns.length > 0 && (
            <div class="query-result">
              <table class="grid" data-testid="query-result">
                <thead>
                  <tr>
                    {result.columns.map((c) => (
                      <th title={c.type}>{c.name}</th>
                    ))}
                  </tr>
                </thead>
                <tbody>
                  {result.rows.map((r) => (
                    <tr>
                      {r.cells.map((cell, i) =>
                        cell.text === undefined ? (
                          <td class="muted">NULL</td>
                        ) : (
                          <td class={numeric.test(result.columns[i]?.type ?? "") ? "num" : "details"}>{cell.text}</td>
                        ),
                      )}
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </div>
        <aside class="schema" data-testid="query-schema">
          <h3>Tables</h3>
          {schema.error && <p class="error">{schema.error}</p>}
          {schema.data?.tables.map((t) => (
            <details>
              <summary>
                <button
                  class="link"
                  title="query this table"
                  onClick={() => {
                    setEdited(true);
                    setSql(`SELECT * FROM ${t.name} LIMIT 100`);
                  }}
                >
                  {t.name}
                </button>
              </summary>
              <ul>
                {t.columns.map((c) => (
                  <li>
                    {c.name} <span class="muted">{c.type}</span>
                  </li>
                ))}
              </ul>
            </details>
          ))}
        </aside>
      </div>
    </div>
  );
}
