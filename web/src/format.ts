// Pure helpers the pages share: number formats, changes, sparklines, heatmap colours.

export const DAY_MS = 86_400_000;

/** A number for people: null (undefined metric) shows as an em dash. */
export function num(value: number | string | null | undefined, digits = 2): string {
  if (value === null || value === undefined || value === "") return "—";
  const n = typeof value === "string" ? Number(value) : value;
  if (!Number.isFinite(n)) return "—";
  return n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function pct(value: number | null | undefined, digits = 2): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "—";
  return `${(value * 100).toFixed(digits)}%`;
}

export function price(value: number | string | null | undefined): string {
  if (value === null || value === undefined) return "—";
  const n = Number(value);
  if (!Number.isFinite(n)) return "—";
  return num(n, Math.abs(n) >= 100 ? 2 : Math.abs(n) >= 1 ? 4 : 6);
}

/** The change to `last` from the price 24 h before `now`: the close of the last daily candle
 * that had closed by then (a candle at t closes at t + 1 day); null without one. */
export function change24h(
  timestamps: readonly number[],
  closes: readonly (number | null)[],
  last: number | null | undefined,
  now: number,
): number | null {
  if (last === null || last === undefined) return null;
  for (let i = timestamps.length - 1; i >= 0; i--) {
    const close = closes[i];
    if (timestamps[i] + DAY_MS <= now - DAY_MS && close) return last / close - 1;
  }
  return null;
}

/** An SVG polyline's points for values in a width x height box (nulls skipped). */
export function sparkline(values: readonly (number | null)[], width: number, height: number): string {
  const present = values.map((v, i) => [i, v] as const).filter((p): p is readonly [number, number] => p[1] !== null);
  if (present.length < 2) return "";
  const ys = present.map(([, v]) => v);
  const lo = Math.min(...ys);
  const hi = Math.max(...ys);
  const span = hi - lo || 1;
  const last = values.length - 1 || 1;
  return present
    .map(([i, v]) => `${((i / last) * width).toFixed(1)},${(height - ((v - lo) / span) * height).toFixed(1)}`)
    .join(" ");
}

/** A red-to-green colour for a return, saturating at `scale` (10 % a month by default). */
export function heat(value: number | null | undefined, scale = 0.1): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "transparent";
  const t = Math.max(-1, Math.min(1, value / scale));
  const alpha = (0.15 + 0.7 * Math.abs(t)).toFixed(2);
  return t >= 0 ? `rgba(22, 163, 74, ${alpha})` : `rgba(220, 38, 38, ${alpha})`;
}

/** A correlation's colour: blue for -1, white for 0, red for +1. */
export function correlationColour(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "transparent";
  const t = Math.max(-1, Math.min(1, value));
  return t >= 0 ? `rgba(220, 38, 38, ${t.toFixed(2)})` : `rgba(37, 99, 235, ${(-t).toFixed(2)})`;
}

/** Pairs of (time in seconds, value) for a chart, dropping undefined values. */
export function points(timestamps: readonly number[], values: readonly (number | null)[]): { time: number; value: number }[] {
  const out: { time: number; value: number }[] = [];
  for (let i = 0; i < timestamps.length; i++) {
    const value = values[i];
    if (value !== null && value !== undefined && Number.isFinite(value)) {
      out.push({ time: Math.floor(timestamps[i] / 1000), value });
    }
  }
  return out;
}

export function isDemo(source: string | null | undefined): boolean {
  return (source ?? "").toLowerCase().startsWith("demo");
}

/** "2021-06-30" for an ISO timestamp or milliseconds. */
export function day(value: string | number | null | undefined): string {
  if (value === null || value === undefined) return "—";
  return new Date(value).toISOString().slice(0, 10);
}

export type Bar = { time: number; open: number; high: number; low: number; close: number };

/** A live candle folded into the bar it belongs to (bars `seconds` wide, times in seconds):
 * the forming bar grows, a new bar starts where the last one ended. */
export function foldBar(forming: Bar | null, update: Bar, seconds: number): Bar {
  const start = Math.floor(update.time / seconds) * seconds;
  if (forming && forming.time === start) {
    return { time: start, open: forming.open, high: Math.max(forming.high, update.high), low: Math.min(forming.low, update.low), close: update.close };
  }
  return { ...update, time: start };
}
