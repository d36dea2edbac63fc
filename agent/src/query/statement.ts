// The one thing read from the SQL text before SQLite sees it: its first
// keyword. SQLite applies some PRAGMAs while it prepares them (soft_heap_limit,
// locking_mode, …), before reader/readonly can be asked, so PRAGMA statements
// are refused by that keyword. Everything else is SQLite's own classification
// (see reader-source.ts).

/** A statement's first keyword, upper case, past comments, empty statements (";") and EXPLAIN [QUERY PLAN]; "" when none. */
export function statementKeyword(sql: string): string {
  const words = leadingWords(sql, 4);
  const at = words[0] !== "EXPLAIN" ? 0 : words[1] === "QUERY" ? 3 : 1;
  return words[at] ?? "";
}

/** Up to `n` words from the start, skipping whitespace, comments and ";"; stops at anything else. */
function leadingWords(sql: string, n: number): string[] {
  const words: string[] = [];
  let i = 0;
  while (i < sql.length && words.length < n) {
    if (/[\s;]/.test(sql[i]!)) i++;
    else if (sql.startsWith("--", i)) i = lineEnd(sql, i);
    else if (sql.startsWith("/*", i)) i = commentEnd(sql, i);
    else {
      const word = /^[A-Za-z_]+/.exec(sql.slice(i, i + 32))?.[0];
      if (!word) break;
      words.push(word.toUpperCase());
      i += word.length;
    }
  }
  return words;
}

function lineEnd(sql: string, from: number): number {
  const end = sql.indexOf("\n", from);
  return end < 0 ? sql.length : end + 1;
}

function commentEnd(sql: string, from: number): number {
  const end = sql.indexOf("*/", from + 2);
  return end < 0 ? sql.length : end + 2;
}
