// Asset: candles with the live forming candle, the tear sheet with its conventions, drawdown,
// monthly returns, rolling volatility and a benchmark comparison.
import { useMemo, useState } from "react";
import { CalendarHeatmap, Chart, DemoLabel, Metrics, Problem, ReportLink, type Candle } from "../components";
import { DAY_MS, foldBar, num, pct, points, price } from "../format";
import type { Interval } from "../gql/graphql";
import { useQuery, useSubscription } from "../hooks";
import { AssetQuery, CandlesQuery, LiveCandlesSubscription } from "../operations";

// Live candles come by the minute or the hour; a daily chart folds minutes into today's bar.
const SPANS: Record<string, { interval: Interval; live: Interval; seconds: number; ms: number | null; label: string }> = {
  D1: { interval: "D1", live: "M1", seconds: 86_400, ms: null, label: "Daily, all history" },
  H1: { interval: "H1", live: "H1", seconds: 3_600, ms: 30 * DAY_MS, label: "Hourly, 30 days" },
  M1: { interval: "M1", live: "M1", seconds: 60, ms: DAY_MS / 4, label: "Minutes, 6 hours" },
};

function candlesOf(c: { timestamps: number[]; open: (number | null)[]; high: (number | null)[]; low: (number | null)[]; close: (number | null)[] } | null | undefined): Candle[] {
  if (!c) return [];
  const out: Candle[] = [];
  c.timestamps.forEach((t, i) => {
    const [open, high, low, close] = [c.open[i], c.high[i], c.low[i], c.close[i]];
    if (open !== null && high !== null && low !== null && close !== null) out.push({ time: t / 1000, open, high, low, close });
  });
  return out;
}

export function AssetPage({ symbol }: { symbol: string }) {
  const [span, setSpan] = useState("D1");
  const { interval, live: liveInterval, seconds, ms } = SPANS[span];
  const start = useMemo(() => (ms === null ? null : new Date(Date.now() - ms).toISOString()), [ms]);
  const [benchmark, setBenchmark] = useState(symbol === "BTC" ? "ETH" : "BTC");
  const sheet = useQuery(AssetQuery, { symbol, benchmark });
  const candles = useQuery(CandlesQuery, { symbol, interval, start });
  const [live, setLive] = useState<Candle | null>(null);
  const history = candlesOf(candles.data?.asset?.candles);
  const lastBar = history.length ? history[history.length - 1] : null;
  const socketError = useSubscription(LiveCandlesSubscription, { symbol, interval: liveInterval }, (data) => {
    const c = data.candles;
    const update = { time: Date.parse(c.timestamp) / 1000, open: c.open, high: c.high, low: c.low, close: c.close };
    setLive((forming) => foldBar(forming ?? lastBar, update, seconds));
  }, candles.fetching || history.length === 0);
  const asset = sheet.data?.asset;
  const perf = asset?.performance;
  return (
    <section>
      <h1>
        {asset?.name ?? symbol} <small>{symbol}</small> <DemoLabel source={asset?.dataSource} />
      </h1>
      <Problem text={sheet.error ?? candles.error ?? socketError} />
      {sheet.data && !asset && <Problem text={`No asset ${symbol}`} />}
      <p className="last">
        Last <b data-testid="last-price">{price(live?.close ?? asset?.lastPrice)}</b>{" "}
        {live && <span className="live-dot" title="Live: the forming candle">live</span>}
      </p>
      <div className="tabs" role="tablist">
        {Object.entries(SPANS).map(([key, s]) => (
          <button key={key} role="tab" aria-selected={key === span} onClick={() => { setLive(null); setSpan(key); }}>{s.label}</button>
        ))}
      </div>
      <Chart label={`${symbol} candles`} series={[{ kind: "candles", data: history, live }]} height={320} />
      {perf && (
        <>
          <h2>Tear sheet <small>{perf.observations} daily returns, {perf.periodsPerYear} periods a year, risk-free {pct(perf.riskFreeRate)}</small></h2>
          <Metrics
            rows={[
              ["Total return", pct(perf.totalReturn)],
              ["CAGR", pct(perf.cagr), "compound annual growth over the window"],
              ["Volatility", pct(perf.volatility), "annualised standard deviation of returns"],
              ["Sharpe", num(perf.sharpe), "annualised, sample standard deviation"],
              ["Sortino", num(perf.sortino)],
              ["Calmar", num(perf.calmar)],
              ["Omega", num(perf.omega)],
              ["Max drawdown", pct(perf.maxDrawdown)],
              ["Longest drawdown", `${perf.maxDrawdownDuration} periods`],
              ["Skew", num(perf.skew)],
              ["Kurtosis", num(perf.kurtosis), "excess kurtosis"],
              ["Tail ratio", num(perf.tailRatio)],
              ["Best day", pct(perf.bestPeriod)],
              ["Worst day", pct(perf.worstPeriod)],
              ["Win rate", pct(perf.winRate)],
              ["Ulcer index", num(perf.ulcerIndex, 4)],
              ["VaR 95 %", pct(perf.valueAtRisk), "historical, one period, a loss as a positive number"],
              ["ES 95 %", pct(perf.expectedShortfall)],
            ]}
          />
          {perf.undefined.length > 0 && (
            <p className="note">Undefined here: {perf.undefined.map((u) => `${u.metric} (${u.reason})`).join("; ")}</p>
          )}
          <div className="grid2">
            <div>
              <h3>Drawdown</h3>
              <Chart label="Drawdown" series={[{ kind: "area", data: points(perf.drawdownSeries.timestamps, perf.drawdownSeries.values), color: "#dc2626" }]} height={200} />
            </div>
            <div>
              <h3>Rolling volatility <small>30 days</small></h3>
              <Chart label="Rolling volatility" series={[{ kind: "line", data: points(perf.rolling?.timestamps ?? [], perf.rolling?.values ?? []) }]} height={200} />
            </div>
          </div>
          <h3>Monthly returns</h3>
          <CalendarHeatmap years={perf.calendar} />
          <h3>
            Against{" "}
            <select value={benchmark} onChange={(e) => setBenchmark(e.target.value)} aria-label="Benchmark">
              {["BTC", "ETH", "LTC", "XRP", "DOGE", "ADA"].filter((s) => s !== symbol).map((s) => <option key={s}>{s}</option>)}
            </select>
          </h3>
          {perf.benchmark ? (
            <Metrics
              rows={[
                ["Alpha", pct(perf.benchmark.alpha), "annualised"],
                ["Beta", num(perf.benchmark.beta)],
                ["Correlation", num(perf.benchmark.correlation)],
                ["Tracking error", pct(perf.benchmark.trackingError)],
                ["Information ratio", num(perf.benchmark.informationRatio)],
                ["Up capture", num(perf.benchmark.upCapture)],
                ["Down capture", num(perf.benchmark.downCapture)],
                ["Common days", String(perf.benchmark.observations)],
              ]}
            />
          ) : (
            <p className="note">No overlap with {benchmark}.</p>
          )}
          <ReportLink path={`/reports/asset/${encodeURIComponent(symbol)}`} />
        </>
      )}
    </section>
  );
}
