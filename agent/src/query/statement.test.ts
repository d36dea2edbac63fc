import { describe, expect, it } from "vitest";
import { statementKeyword } from "./statement.ts";

describe("statementKeyword", () => {
  it.each([
    ["SELECT 1", "SELECT"],
    ["  select 1", "SELECT"],
    ["WITH x AS (SELECT 1) SELECT * FROM x", "WITH"],
    ["PRAGMA table_info(events)", "PRAGMA"],
    ["pragma\tquery_only = 0", "PRAGMA"],
    ["PRAGMA\"locking_mode\" = EXCLUSIVE", "PRAGMA"],
    ["-- note\nPRAGMA soft_heap_limit = 1", "PRAGMA"],
    ["/* a */ /**/ PRAGMA x", "PRAGMA"],
    ["; ;\n PRAGMA x", "PRAGMA"],
    ["EXPLAIN PRAGMA x", "PRAGMA"],
    ["explain query plan pragma x", "PRAGMA"],
    ["EXPLAIN SELECT 1", "SELECT"],
    ["EXPLAIN QUERY PLAN SELECT 1", "SELECT"],
    ["SELECT 1; PRAGMA x", "SELECT"],
    ["", ""],
    ["-- only a comment", ""],
    ["/* unterminated", ""],
    ["(SELECT 1)", ""],
  ])("%j → %j", (sql, keyword) => {
    expect(statementKeyword(sql)).toBe(keyword);
  });
});
