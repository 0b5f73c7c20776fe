/** The middle value (the mean of the two middle ones for an even count). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The median and the 99th percentile (nearest rank below), ignoring NaN. */
export function percentiles(values: readonly number[]): { p50: number; p99: number } {
  const sorted = values.filter((v) => !Number.isNaN(v)).sort((x, y) => x - y);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * (sorted.length - 1)))] ?? NaN;
  return { p50: at(0.5), p99: at(0.99) };
}
