// Pieces the pages share: charts (lightweight-charts), SVG sparklines and scatter plots,
// heatmaps, the demo label, errors as the API words them.
import {
  ColorType,
  createChart,
  type IChartApi,
  type ISeriesApi,
  type SeriesType,
  type Time,
} from "lightweight-charts";
import { useEffect, useRef, useState, type ReactNode } from "react";
import { session } from "./client";
import { correlationColour, heat, isDemo, pct, sparkline } from "./format";

export type Candle = { time: number; open: number; high: number; low: number; close: number };
export type Point = { time: number; value: number };
export type ChartSeries =
  | { kind: "candles"; data: Candle[]; live?: Candle | null }
  | { kind: "line" | "area"; data: Point[]; color?: string; title?: string };

const COLOURS = ["#2563eb", "#f59e0b", "#16a34a", "#dc2626", "#7c3aed", "#0891b2"];

/** A time-series chart; `live` updates the last candle in place (the forming one). */
export function Chart({ series, height = 280, label }: { series: ChartSeries[]; height?: number; label: string }) {
  const box = useRef<HTMLDivElement>(null);
  const chart = useRef<IChartApi | null>(null);
  const candles = useRef<ISeriesApi<"Candlestick"> | null>(null);
  useEffect(() => {
    if (!box.current) return;
    const made = createChart(box.current, {
      height,
      autoSize: true,
      layout: { background: { type: ColorType.Solid, color: "transparent" }, textColor: "#475569" },
      grid: { vertLines: { color: "#eef2f7" }, horzLines: { color: "#eef2f7" } },
      timeScale: { timeVisible: true, secondsVisible: false },
    });
    chart.current = made;
    series.forEach((s, i) => {
      let added: ISeriesApi<SeriesType>;
      if (s.kind === "candles") {
        const c = made.addCandlestickSeries();
        c.setData(s.data.map((d) => ({ ...d, time: d.time as Time })));
        candles.current = c;
        added = c;
      } else {
        const colour = s.color ?? COLOURS[i % COLOURS.length];
        added =
          s.kind === "area"
            ? made.addAreaSeries({ lineColor: colour, topColor: `${colour}55`, bottomColor: `${colour}05`, title: s.title })
            : made.addLineSeries({ color: colour, lineWidth: 2, title: s.title });
        added.setData(s.data.map((d) => ({ ...d, time: d.time as Time })));
      }
    });
    made.timeScale().fitContent();
    return () => {
      made.remove();
      chart.current = null;
      candles.current = null;
    };
    // The chart is rebuilt when its data changes; live candles go through update() below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [JSON.stringify(series.map((s) => [s.kind, s.data.length, s.data[s.data.length - 1]])), height]);

  const live = series.find((s): s is Extract<ChartSeries, { kind: "candles" }> => s.kind === "candles")?.live ?? null;
  const lastTime = series.find((s): s is Extract<ChartSeries, { kind: "candles" }> => s.kind === "candles")?.data.at(-1)?.time ?? 0;
  useEffect(() => {
    // lightweight-charts refuses a bar older than its last one (a stream of the span before)
    if (live && candles.current && live.time >= lastTime) candles.current.update({ ...live, time: live.time as Time });
  }, [live, lastTime]);
  return <div className="chart" ref={box} role="img" aria-label={label} data-points={series.reduce((n, s) => n + s.data.length, 0)} />;
}

export function Sparkline({ values, width = 120, height = 32 }: { values: (number | null)[]; width?: number; height?: number }) {
  const line = sparkline(values, width, height);
  const first = values.find((v) => v !== null);
  const last = [...values].reverse().find((v) => v !== null);
  const up = first != null && last != null && last >= first;
  return (
    <svg className="sparkline" width={width} height={height} viewBox={`0 0 ${width} ${height}`} aria-hidden="true">
      {line && <polyline points={line} fill="none" stroke={up ? "#16a34a" : "#dc2626"} strokeWidth="1.5" />}
    </svg>
  );
}

/** Points on two axes (the efficient frontier: volatility against return). */
export function Scatter({
  points,
  highlight,
  xLabel,
  yLabel,
}: {
  points: { x: number; y: number }[];
  highlight?: { x: number; y: number } | null;
  xLabel: string;
  yLabel: string;
}) {
  const w = 420;
  const h = 260;
  const pad = 40;
  const all = highlight ? [...points, highlight] : points;
  if (all.length === 0) return null;
  const xs = all.map((p) => p.x);
  const ys = all.map((p) => p.y);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const sx = (x: number) => pad + ((x - x0) / (x1 - x0 || 1)) * (w - 2 * pad);
  const sy = (y: number) => h - pad - ((y - y0) / (y1 - y0 || 1)) * (h - 2 * pad);
  return (
    <svg className="scatter" viewBox={`0 0 ${w} ${h}`} role="img" aria-label={`${yLabel} against ${xLabel}`}>
      <line x1={pad} y1={h - pad} x2={w - pad} y2={h - pad} stroke="#94a3b8" />
      <line x1={pad} y1={pad} x2={pad} y2={h - pad} stroke="#94a3b8" />
      <text x={w / 2} y={h - 8} textAnchor="middle" fontSize="11">{xLabel} ({pct(x0, 0)}–{pct(x1, 0)})</text>
      <text x={12} y={h / 2} textAnchor="middle" fontSize="11" transform={`rotate(-90 12 ${h / 2})`}>{yLabel}</text>
      <polyline points={points.map((p) => `${sx(p.x)},${sy(p.y)}`).join(" ")} fill="none" stroke="#2563eb" />
      {points.map((p, i) => <circle key={i} cx={sx(p.x)} cy={sy(p.y)} r="3" fill="#2563eb" />)}
      {highlight && <circle cx={sx(highlight.x)} cy={sy(highlight.y)} r="6" fill="#f59e0b" stroke="#000" />}
    </svg>
  );
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

export function CalendarHeatmap({ years }: { years: { year: number; months: (number | null)[]; total?: number | null }[] }) {
  return (
    <table className="heatmap" aria-label="Monthly returns">
      <thead>
        <tr><th>Year</th>{MONTHS.map((m) => <th key={m}>{m}</th>)}<th>Year</th></tr>
      </thead>
      <tbody>
        {years.map((y) => (
          <tr key={y.year}>
            <th>{y.year}</th>
            {y.months.map((m, i) => <td key={i} style={{ background: heat(m) }}>{pct(m, 1)}</td>)}
            <td style={{ background: heat(y.total, 1) }}>{pct(y.total, 1)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function CorrelationHeatmap({ symbols, matrix }: { symbols: string[]; matrix: (number | null)[][] }) {
  return (
    <table className="heatmap" aria-label="Correlation">
      <thead><tr><th />{symbols.map((s) => <th key={s}>{s}</th>)}</tr></thead>
      <tbody>
        {matrix.map((row, i) => (
          <tr key={symbols[i]}>
            <th>{symbols[i]}</th>
            {row.map((v, j) => <td key={j} style={{ background: correlationColour(v) }}>{v === null ? "—" : v.toFixed(2)}</td>)}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function DemoLabel({ source }: { source: string | null | undefined }) {
  if (!isDemo(source)) return null;
  return <span className="demo" title="Generated demo data, not a market">DEMO DATA</span>;
}

export function Problem({ text }: { text: string | null | undefined }) {
  if (!text) return null;
  return <p className="problem" role="alert">{text}</p>;
}

export function Progress({ value, label }: { value: number; label: string }) {
  return (
    <div className="progress" role="progressbar" aria-label={label} aria-valuemin={0} aria-valuemax={100} aria-valuenow={Math.round(value * 100)}>
      <div style={{ width: `${Math.round(value * 100)}%` }} />
      <span>{Math.round(value * 100)}%</span>
    </div>
  );
}

export function Metrics({ rows }: { rows: [string, ReactNode, string?][] }) {
  return (
    <dl className="metrics">
      {rows.map(([name, value, note]) => (
        <div key={name} title={note}>
          <dt>{name}</dt>
          <dd>{value}</dd>
        </div>
      ))}
    </dl>
  );
}

/** A report from GET /reports/..., downloaded with the session's token (a plain link could
 * not send it), kept as a self-contained HTML file. */
export function ReportLink({ path, label = "Download the HTML tear sheet" }: { path: string; label?: string }) {
  const [problem, setProblem] = useState<string | null>(null);
  const download = async () => {
    const token = (await session.fresh())?.accessToken;
    let response: Response;
    try {
      response = await fetch(path, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
    } catch (error) {
      setProblem(`The server could not be reached: ${(error as Error).message}`);
      return;
    }
    if (!response.ok) {
      const body = (await response.json().catch(() => null)) as { errors?: { message: string }[] } | null;
      setProblem(body?.errors?.map((e) => e.message).join("; ") ?? `the report failed (${response.status})`);
      return;
    }
    const url = URL.createObjectURL(await response.blob());
    const anchor = document.createElement("a");
    anchor.href = url;
    anchor.download = `coinql-${path.split("/").filter(Boolean).slice(1).join("-")}.html`;
    anchor.click();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
    setProblem(null);
  };
  return (
    <p>
      <button type="button" onClick={() => void download()}>{label}</button>
      <Problem text={problem} />
    </p>
  );
}
