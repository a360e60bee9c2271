// Backtests: a form for every strategy kind, live progress (`jobProgress`), equity and drawdown,
// the trades, Monte Carlo bands, and the registry with runs compared side by side.
import { useEffect, useRef, useState } from "react";
import { Chart, Metrics, Problem, Progress, ReportLink } from "../components";
import { day, num, pct, points } from "../format";
import type { BacktestInput, FillPrice, SplitMode, StrategyKindInput, StudyInput } from "../gql/graphql";
import { refusal, useMutation, useQuery, useSubscription } from "../hooks";
import {
  CancelJobMutation,
  CompareQuery,
  JobProgressSubscription,
  JobQuery,
  RegistryQuery,
  RunBacktestMutation,
  RunQuery,
  RunSimulationMutation,
  RunSweepMutation,
  RunWalkForwardMutation,
} from "../operations";

type Field = { name: string; label: string; value: number };
const KINDS: Record<string, { label: string; fields: Field[]; allocation?: boolean }> = {
  smaCross: { label: "SMA crossover", fields: [{ name: "fast", label: "Fast", value: 10 }, { name: "slow", label: "Slow", value: 30 }] },
  emaCross: { label: "EMA crossover", fields: [{ name: "fast", label: "Fast", value: 12 }, { name: "slow", label: "Slow", value: 26 }] },
  rsiReversion: { label: "RSI reversion", fields: [{ name: "window", label: "Window", value: 14 }, { name: "lower", label: "Lower", value: 30 }, { name: "upper", label: "Upper", value: 70 }] },
  donchianBreakout: { label: "Donchian breakout", fields: [{ name: "entry", label: "Entry", value: 20 }, { name: "exit", label: "Exit", value: 10 }] },
  momentum: { label: "Momentum", fields: [{ name: "lookback", label: "Lookback", value: 30 }, { name: "threshold", label: "Threshold", value: 0 }] },
  equalWeight: { label: "Equal weight", fields: [{ name: "lookback", label: "Lookback", value: 90 }], allocation: true },
  marketCapWeight: { label: "Market-cap weight", fields: [{ name: "lookback", label: "Lookback", value: 90 }], allocation: true },
  inverseVolatility: { label: "Inverse volatility", fields: [{ name: "lookback", label: "Lookback", value: 90 }], allocation: true },
  minVolatility: { label: "Minimum volatility", fields: [{ name: "lookback", label: "Lookback", value: 90 }], allocation: true },
  maxSharpe: { label: "Maximum Sharpe", fields: [{ name: "lookback", label: "Lookback", value: 90 }], allocation: true },
  riskParity: { label: "Risk parity", fields: [{ name: "lookback", label: "Lookback", value: 90 }], allocation: true },
  hierarchicalRiskParity: { label: "Hierarchical risk parity", fields: [{ name: "lookback", label: "Lookback", value: 90 }], allocation: true },
};

export function BacktestsPage({ runId }: { runId?: string }) {
  return (
    <section>
      <h1>Backtests</h1>
      <div className="grid2">
        <BacktestForm />
        <Registry />
      </div>
      <StudyForm />
      {runId && <RunView key={runId} id={runId} />}
    </section>
  );
}

function BacktestForm() {
  const [kind, setKind] = useState("smaCross");
  const [params, setParams] = useState<Record<string, number>>({});
  const [symbols, setSymbols] = useState("BTC");
  const [start, setStart] = useState("");
  const [end, setEnd] = useState("");
  const [capital, setCapital] = useState(10000);
  const [feeBps, setFeeBps] = useState(10);
  const [fillPrice, setFillPrice] = useState<FillPrice>("NEXT_OPEN");
  const [run, running] = useMutation(RunBacktestMutation);
  const [problem, setProblem] = useState<string | null>(null);
  const [jobId, setJobId] = useState<string | null>(null);
  const spec = KINDS[kind];
  const submit = async (event: React.FormEvent) => {
    event.preventDefault();
    const values = Object.fromEntries(spec.fields.map((f) => [f.name, params[`${kind}.${f.name}`] ?? f.value]));
    const input: BacktestInput = {
      symbols: symbols.split(",").map((s) => s.trim().toUpperCase()).filter(Boolean),
      interval: "D1",
      strategy: { [kind]: values } as unknown as StrategyKindInput,
      initialCapital: capital,
      feeBps,
      fillPrice,
      ...(start ? { start: new Date(start).toISOString() } : {}),
      ...(end ? { end: new Date(end).toISOString() } : {}),
    };
    const { data, error } = await run({ input });
    const outcome = data?.runBacktest;
    if (outcome?.__typename === "Job") {
      setProblem(null);
      setJobId(outcome.id);
    } else setProblem(refusal(outcome, error));
  };
  return (
    <form onSubmit={(e) => void submit(e)} className="stack" aria-label="Run a backtest">
      <h2>Run a backtest</h2>
      <label>Strategy <select aria-label="Strategy" value={kind} onChange={(e) => setKind(e.target.value)}>
        {Object.entries(KINDS).map(([k, s]) => <option key={k} value={k}>{s.label}</option>)}
      </select></label>
      {spec.fields.map((f) => (
        <label key={f.name}>{f.label} <input type="number" step="any" aria-label={f.label} value={params[`${kind}.${f.name}`] ?? f.value} onChange={(e) => setParams({ ...params, [`${kind}.${f.name}`]: Number(e.target.value) })} /></label>
      ))}
      <label>Symbols <input aria-label="Symbols" value={symbols} onChange={(e) => setSymbols(e.target.value)} placeholder={spec.allocation ? "BTC, ETH, LTC" : "BTC"} /></label>
      <label>From <input type="date" aria-label="From" value={start} onChange={(e) => setStart(e.target.value)} /></label>
      <label>To <input type="date" aria-label="To" value={end} onChange={(e) => setEnd(e.target.value)} /></label>
      <label>Capital <input type="number" aria-label="Capital" value={capital} onChange={(e) => setCapital(Number(e.target.value))} /></label>
      <label>Fee (bps) <input type="number" aria-label="Fee (bps)" value={feeBps} onChange={(e) => setFeeBps(Number(e.target.value))} /></label>
      <label>Fill at <select aria-label="Fill at" value={fillPrice} onChange={(e) => setFillPrice(e.target.value as FillPrice)}><option>NEXT_OPEN</option><option>CLOSE</option></select></label>
      <button disabled={running}>Run</button>
      <Problem text={problem} />
      {jobId && <JobFollower key={jobId} jobId={jobId} onRun={(id) => { window.location.hash = `#/backtests/${id}`; }} />}
    </form>
  );
}

const SIGNALS = ["smaCross", "emaCross", "rsiReversion", "donchianBreakout", "momentum"] as const;
const GRIDS: Record<(typeof SIGNALS)[number], Record<string, string>> = {
  smaCross: { fast: "5, 10, 20", slow: "30, 50, 100" },
  emaCross: { fast: "8, 12", slow: "26, 50" },
  rsiReversion: { window: "7, 14", lower: "25, 30", upper: "70, 75" },
  donchianBreakout: { entry: "20, 55", exit: "10, 20" },
  momentum: { lookback: "14, 30, 90" },
};

/** A parameter sweep or a walk-forward study of one signal over a grid. */
function StudyForm() {
  const [kind, setKind] = useState<"sweep" | "walkForward">("walkForward");
  const [signal, setSignal] = useState<(typeof SIGNALS)[number]>("smaCross");
  const [grid, setGrid] = useState<Record<string, string>>({});
  const [symbol, setSymbol] = useState("BTC");
  const [trainBars, setTrainBars] = useState(365);
  const [testBars, setTestBars] = useState(90);
  const [mode, setMode] = useState<SplitMode>("ROLLING");
  const [sweep, sweeping] = useMutation(RunSweepMutation);
  const [walk, walking] = useMutation(RunWalkForwardMutation);
  const [jobId, setJobId] = useState<string | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const values = { ...GRIDS[signal], ...Object.fromEntries(Object.entries(grid).filter(([k]) => k.startsWith(`${signal}.`)).map(([k, v]) => [k.slice(signal.length + 1), v])) };
  const submit = async (event: React.FormEvent) => {
    event.preventDefault();
    const grid = Object.entries(values).map(([name, text]) => ({
      name,
      values: text.split(",").map((v) => v.trim()).filter(Boolean).map(Number),
    }));
    const bad = grid.find((g) => g.values.length === 0 || !g.values.every(Number.isFinite));
    if (bad) return setProblem(`${bad.name} values: give numbers separated by commas`);
    if (!(trainBars > 0 && testBars > 0)) return setProblem("train and test bars must be more than 0");
    const input: StudyInput = {
      symbol: symbol.trim().toUpperCase(),
      strategy: signal,
      feeBps: 10,
      grid,
      ...(kind === "walkForward" ? { trainBars, testBars, mode } : {}),
    };
    const { outcome, error } =
      kind === "sweep"
        ? await sweep({ input }).then((r) => ({ outcome: r.data?.runSweep, error: r.error }))
        : await walk({ input }).then((r) => ({ outcome: r.data?.runWalkForward, error: r.error }));
    if (outcome?.__typename === "Job") {
      setProblem(null);
      setJobId(outcome.id);
    } else setProblem(refusal(outcome, error));
  };
  return (
    <form className="stack wide" onSubmit={(e) => void submit(e)} aria-label="Run a study">
      <h2>Studies</h2>
      <label>Study <select aria-label="Study" value={kind} onChange={(e) => setKind(e.target.value as "sweep" | "walkForward")}>
        <option value="walkForward">Walk-forward</option><option value="sweep">Parameter sweep</option>
      </select></label>
      <label>Signal <select aria-label="Signal" value={signal} onChange={(e) => setSignal(e.target.value as (typeof SIGNALS)[number])}>
        {SIGNALS.map((s) => <option key={s} value={s}>{KINDS[s].label}</option>)}
      </select></label>
      <label>Symbol <input aria-label="Study symbol" value={symbol} onChange={(e) => setSymbol(e.target.value)} /></label>
      {Object.entries(values).map(([name, text]) => (
        <label key={name}>{name} values <input aria-label={`${name} values`} value={text} onChange={(e) => setGrid({ ...grid, [`${signal}.${name}`]: e.target.value })} /></label>
      ))}
      {kind === "walkForward" && (
        <>
          <label>Train bars <input type="number" aria-label="Train bars" value={trainBars} onChange={(e) => setTrainBars(Number(e.target.value))} /></label>
          <label>Test bars <input type="number" aria-label="Test bars" value={testBars} onChange={(e) => setTestBars(Number(e.target.value))} /></label>
          <label>Windows <select aria-label="Windows" value={mode} onChange={(e) => setMode(e.target.value as SplitMode)}><option>ROLLING</option><option>ANCHORED</option></select></label>
        </>
      )}
      <button disabled={sweeping || walking}>Run the study</button>
      <Problem text={problem} />
      {jobId && <JobFollower key={jobId} jobId={jobId} />}
    </form>
  );
}

/** A job's progress from `jobProgress`, and what it produced once it ends. */
function JobFollower({ jobId, onRun }: { jobId: string; onRun?: (runId: string) => void }) {
  const [progress, setProgress] = useState({ status: "QUEUED", progress: 0, stage: "queued" });
  const socketError = useSubscription(JobProgressSubscription, { jobId }, (data) => setProgress(data.jobProgress));
  const ended = ["SUCCEEDED", "FAILED", "CANCELLED", "INTERRUPTED"].includes(progress.status);
  const job = useQuery(JobQuery, { id: jobId }, !ended);
  const [cancel] = useMutation(CancelJobMutation);
  const result = job.data?.job?.result;
  const runId = result?.__typename === "BacktestRun" ? result.id : null;
  const announce = useRef(onRun);
  announce.current = onRun;
  useEffect(() => {
    if (runId) announce.current?.(runId); // once per run: later renders do not navigate again
  }, [runId]);
  return (
    <div className="job" data-status={progress.status}>
      <Progress value={progress.status === "SUCCEEDED" ? 1 : progress.progress} label="Job progress" />
      <span>{progress.status.toLowerCase()} · {progress.stage}</span>
      {!ended && <button type="button" onClick={() => void cancel({ id: jobId })}>Cancel</button>}
      <Problem text={socketError ?? job.data?.job?.error} />
      {result?.__typename === "SweepRun" && (
        <>
          <p>Best by {result.metric}: <code>{JSON.stringify(result.best?.params)}</code></p>
          <table aria-label="Sweep results">
            <thead><tr><th>Parameters</th><th>Return</th><th>Sharpe</th><th>Max DD</th><th>Trades</th></tr></thead>
            <tbody>{result.rows.map((row, i) => <tr key={i}><td><code>{JSON.stringify(row.params)}</code></td><td>{pct(row.metrics.totalReturn)}</td><td>{num(row.metrics.sharpe)}</td><td>{pct(row.metrics.maxDrawdown)}</td><td>{row.metrics.tradeCount ?? "—"}</td></tr>)}</tbody>
          </table>
        </>
      )}
      {result?.__typename === "WalkForwardRun" && (
        <>
          <p>Out-of-sample {result.metric} over in-sample (decay): <b>{num(result.decay)}</b></p>
          <table aria-label="Walk-forward splits">
            <thead><tr><th>Train</th><th>Test</th><th>Chosen</th><th>IS Sharpe</th><th>OOS Sharpe</th><th>IS return</th><th>OOS return</th></tr></thead>
            <tbody>{result.splits.map((split, i) => <tr key={i}><td>{day(split.trainStart)} – {day(split.trainEnd)}</td><td>{day(split.testStart)} – {day(split.testEnd)}</td><td><code>{JSON.stringify(split.params)}</code></td><td>{num(split.inSample.sharpe)}</td><td>{num(split.outOfSample.sharpe)}</td><td>{pct(split.inSample.totalReturn)}</td><td>{pct(split.outOfSample.totalReturn)}</td></tr>)}</tbody>
          </table>
        </>
      )}
      {result?.__typename === "SimulationRun" && (
        <>
          <Metrics rows={[["Ruin probability", pct(result.ruinProbability)], ["ES 99 %", pct(result.expectedShortfall99)], ["Max drawdown p5 / p50 / p95", `${pct(result.maxDrawdownPercentiles.p5)} / ${pct(result.maxDrawdownPercentiles.p50)} / ${pct(result.maxDrawdownPercentiles.p95)}`]]} />
          <Chart label="Monte Carlo bands" height={240} series={(["p5", "p25", "p50", "p75", "p95"] as const).map((band) => ({ kind: "line" as const, title: band, data: points(result.bands.timestamps, result.bands[band]) }))} />
        </>
      )}
    </div>
  );
}

function RunView({ id }: { id: string }) {
  const run = useQuery(RunQuery, { id });
  const [simulate] = useMutation(RunSimulationMutation);
  const [simulation, setSimulation] = useState<string | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const r = run.data?.backtestRun;
  if (!r) return <Problem text={run.error ?? (run.fetching ? null : `No run ${id}`)} />;
  const m = r.metrics;
  return (
    <article className="run">
      <h2>{r.name} <small>{day(r.createdAt)}</small></h2>
      <Metrics rows={[["Total return", pct(m.totalReturn)], ["CAGR", pct(m.cagr)], ["Volatility", pct(m.volatility)], ["Sharpe", num(m.sharpe)], ["Sortino", num(m.sortino)], ["Calmar", num(m.calmar)], ["Max drawdown", pct(m.maxDrawdown)], ["Trades", String(m.tradeCount)], ["Win rate", pct(m.winRate)], ["Exposure", pct(m.exposure)]]} />
      <h3>Equity</h3>
      <Chart label="Equity" series={[{ kind: "area", data: points(r.equity.timestamps, r.equity.values) }]} height={260} />
      <h3>Drawdown</h3>
      <Chart label="Backtest drawdown" series={[{ kind: "area", color: "#dc2626", data: points(r.performance?.drawdownSeries.timestamps ?? [], r.performance?.drawdownSeries.values ?? []) }]} height={160} />
      <p>
        <button onClick={async () => {
          const { data, error } = await simulate({ runId: id });
          const outcome = data?.runSimulation;
          if (outcome?.__typename === "Job") setSimulation(outcome.id);
          else setProblem(refusal(outcome, error));
        }}>Monte Carlo: 2,000 paths of a year</button>
      </p>
      <ReportLink path={`/reports/backtest/${id}`} />
      <Problem text={problem} />
      {simulation && <JobFollower key={simulation} jobId={simulation} />}
      <h3>Trades</h3>
      <table>
        <thead><tr><th>Symbol</th><th>Entry</th><th>Exit</th><th>Entry price</th><th>Exit price</th><th>Quantity</th><th>PnL</th><th>Return</th><th>Fees</th></tr></thead>
        <tbody>
          {(r.trades ?? []).map((t, i) => (
            <tr key={i}><td>{t.symbol}</td><td>{day(t.entryTime)}</td><td>{day(t.exitTime)}</td><td>{num(t.entryPrice)}</td><td>{num(t.exitPrice)}</td><td>{num(t.quantity, 6)}</td><td>{num(t.pnl)}</td><td>{pct(t.returnPct)}</td><td>{num(t.fees)}</td></tr>
          ))}
        </tbody>
      </table>
    </article>
  );
}

function Registry() {
  const runs = useQuery(RegistryQuery, {});
  const [picked, setPicked] = useState<string[]>([]);
  const compared = useQuery(CompareQuery, { ids: picked }, picked.length < 2);
  const list = runs.data?.backtestRuns?.edges.map((e) => e.node) ?? [];
  return (
    <div>
      <h2>Registry <button type="button" onClick={runs.again}>Refresh</button></h2>
      <Problem text={runs.error ?? compared.error} />
      <table>
        <thead><tr><th>Compare</th><th>Run</th><th>Return</th><th>Sharpe</th><th>Max DD</th><th>Trades</th></tr></thead>
        <tbody>
          {list.map((r) => (
            <tr key={r.id}>
              <td><input type="checkbox" aria-label={`Compare ${r.name}`} checked={picked.includes(r.id)} onChange={(e) => setPicked(e.target.checked ? [...picked, r.id] : picked.filter((p) => p !== r.id))} /></td>
              <td><a href={`#/backtests/${r.id}`}>{r.name}</a> <small>{day(r.createdAt)}</small></td>
              <td>{pct(r.metrics.totalReturn)}</td><td>{num(r.metrics.sharpe)}</td><td>{pct(r.metrics.maxDrawdown)}</td><td>{r.metrics.tradeCount}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {compared.data?.compareBacktests && (
        <>
          <Chart label="Runs compared" height={220} series={compared.data.compareBacktests.map((r) => ({ kind: "line" as const, title: r.name, data: points(r.equity.timestamps, r.equity.values) }))} />
          <table className="compare">
            <thead><tr><th>Metric</th>{compared.data.compareBacktests.map((r) => <th key={r.id}>{r.name}</th>)}</tr></thead>
            <tbody>
              {(["totalReturn", "cagr", "volatility", "sharpe", "sortino", "calmar", "maxDrawdown", "winRate", "exposure"] as const).map((key) => (
                <tr key={key}><th>{key}</th>{compared.data!.compareBacktests!.map((r) => <td key={r.id}>{["sharpe", "sortino", "calmar"].includes(key) ? num(r.metrics[key]) : pct(r.metrics[key])}</td>)}</tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </div>
  );
}
