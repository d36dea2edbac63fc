// Numbers for people: the colony's insight texts and the CLI's tables round
// them the same way.

/**
 * Numbers rounded for reading: 0.0123 → "0.0123", 3.14159 → "3.14",
 * 42.57 → "42.6", 512.4 → "512", 12345.6 → "12346", 1234567 → "1.23M".
 */
export function formatNumber(value: number | bigint): string {
  if (typeof value === "bigint") return value.toString();
  if (Number.isNaN(value)) return "-";
  if (!Number.isFinite(value)) return value > 0 ? "∞" : "-∞";
  const abs = Math.abs(value);
  if (abs === 0) return "0";
  if (abs >= 1e6) {
    const suffixes: Array<[number, string]> = [
      [1e15, "P"],
      [1e12, "T"],
      [1e9, "G"],
      [1e6, "M"],
    ];
    const [size, suffix] = suffixes.find(([s]) => abs >= s)!;
    return `${trimZeros((value / size).toPrecision(3))}${suffix}`;
  }
  if (abs >= 100) return Math.round(value).toString();
  if (abs >= 10) return trimZeros(value.toFixed(1));
  if (abs >= 1) return trimZeros(value.toFixed(2));
  return trimZeros(value.toPrecision(3));
}

function trimZeros(text: string): string {
  if (!text.includes(".") || text.includes("e")) return text;
  return text.replace(/\.?0+$/, "");
}
