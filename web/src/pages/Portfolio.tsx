// Portfolio: positions, live value (`portfolioValue`), value history, the risk report, the
// optimizer with its frontier and the rebalance trades; transactions by hand or from CSV.
import { useState } from "react";
import { Chart, CorrelationHeatmap, Metrics, Problem, ReportLink, Scatter } from "../components";
import { day, num, pct, points, price } from "../format";
import type { Objective, TransactionInput, TransactionKind } from "../gql/graphql";
import { refusal, useMutation, useQuery, useSubscription } from "../hooks";
import {
  AddTransactionsMutation,
  CreatePortfolioMutation,
  ImportTransactionsMutation,
  OptimizeQuery,
  PortfolioQuery,
  PortfoliosQuery,
  PortfolioValueSubscription,
  RebalanceQuery,
  RiskQuery,
} from "../operations";

export function PortfolioPage({ id }: { id?: string }) {
  const list = useQuery(PortfoliosQuery, {});
  const [create, creating] = useMutation(CreatePortfolioMutation);
  const [name, setName] = useState("");
  const [problem, setProblem] = useState<string | null>(null);
  const portfolios = list.data?.portfolios?.edges.map((e) => e.node) ?? [];
  const chosen = id ?? portfolios[0]?.id;
  const submit = async (event: React.FormEvent) => {
    event.preventDefault();
    const { data, error } = await create({ name });
    const made = data?.createPortfolio;
    if (made?.__typename === "Portfolio") {
      setName("");
      setProblem(null);
      list.again();
      window.location.hash = `#/portfolio/${made.id}`;
    } else setProblem(refusal(made, error));
  };
  return (
    <section>
      <h1>Portfolios</h1>
      <Problem text={list.error ?? problem} />
      <nav className="sub">
        {portfolios.map((p) => (
          <a key={p.id} href={`#/portfolio/${p.id}`} aria-current={p.id === chosen ? "page" : undefined}>{p.name}</a>
        ))}
        <form onSubmit={(e) => void submit(e)} className="inline">
          <input aria-label="New portfolio name" placeholder="New portfolio" value={name} onChange={(e) => setName(e.target.value)} required />
          <button disabled={creating}>Create</button>
        </form>
      </nav>
      {chosen && <PortfolioView key={chosen} id={chosen} />}
    </section>
  );
}

function PortfolioView({ id }: { id: string }) {
  const view = useQuery(PortfolioQuery, { id });
  const [live, setLive] = useState<{ value: string; unrealizedPnl: string; dayChange: string; timestamp: string } | null>(null);
  const socketError = useSubscription(PortfolioValueSubscription, { portfolioId: id }, (data) => setLive(data.portfolioValue));
  const p = view.data?.portfolio;
  if (!p) return <Problem text={view.error ?? (view.fetching ? null : "No such portfolio")} />;
  const open = (p.positions ?? []).filter((pos) => Number(pos.quantity) !== 0);
  return (
    <>
      <h2>{p.name} <small>{p.baseCurrency}</small></h2>
      <Problem text={socketError} />
      <Metrics
        rows={[
          ["Value", <span data-testid="live-value" data-live={live ? "yes" : "no"} data-at={live?.timestamp ?? ""}>{num(live?.value ?? p.value)}</span>],
          ["Unrealized PnL", num(live?.unrealizedPnl ?? p.unrealizedPnl)],
          ["Day change", live ? num(live.dayChange) : "—"],
          ["Realized PnL", num(p.realizedPnl)],
          ["Cash", num(p.cash)],
          ["Net deposits", num(p.netDeposits)],
          ["Fees paid", num(p.feesPaid)],
        ]}
      />
      <table>
        <thead><tr><th>Asset</th><th>Quantity</th><th>Average cost</th><th>Price</th><th>Value</th><th>Unrealized</th><th>Realized</th><th>Weight</th></tr></thead>
        <tbody>
          {open.map((pos) => (
            <tr key={pos.symbol}>
              <td>{pos.symbol}</td><td>{num(pos.quantity, 6)}</td><td>{price(pos.averageCost)}</td><td>{price(pos.lastPrice)}</td>
              <td>{num(pos.marketValue)}</td><td>{num(pos.unrealizedPnl)}</td><td>{num(pos.realizedPnl)}</td><td>{pct(pos.weight)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {p.valueHistory && p.valueHistory.timestamps.length > 1 && (
        <Chart label="Value history" series={[{ kind: "area", data: points(p.valueHistory.timestamps, p.valueHistory.values) }]} height={220} />
      )}
      <Transactions portfolioId={id} onChange={view.again} transactions={p.transactions} />
      {open.length > 0 && <Risk portfolioId={id} positions={open.map((pos) => ({ symbol: pos.symbol, weight: pos.weight ?? 0 }))} />}
      <ReportLink path={`/reports/portfolio/${id}`} />
    </>
  );
}

/** "2021-06-30T14:05" in the browser's own time zone, as a datetime-local input shows it. */
function localMinute(moment: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${moment.getFullYear()}-${pad(moment.getMonth() + 1)}-${pad(moment.getDate())}T${pad(moment.getHours())}:${pad(moment.getMinutes())}`;
}

const KINDS: TransactionKind[] = ["DEPOSIT", "WITHDRAW", "BUY", "SELL", "FEE", "TRANSFER_IN", "TRANSFER_OUT"];

function Transactions({ portfolioId, onChange, transactions }: { portfolioId: string; onChange: () => void; transactions: { kind: string; asset: string; quantity: string; price?: string | null; fee: string; time: string }[] }) {
  const [add, adding] = useMutation(AddTransactionsMutation);
  const [upload, uploading] = useMutation(ImportTransactionsMutation);
  const [problem, setProblem] = useState<string | null>(null);
  const [row, setRow] = useState({ kind: "DEPOSIT" as TransactionKind, asset: "USDT", quantity: "", price: "", time: localMinute(new Date()) });
  const answer = (outcome: { __typename: string } | null | undefined, error: string | null) => {
    if (outcome?.__typename === "Portfolio") {
      setProblem(null);
      onChange();
    } else setProblem(refusal(outcome, error));
  };
  const submit = async (event: React.FormEvent) => {
    event.preventDefault();
    const tx: TransactionInput = { kind: row.kind, asset: row.asset.toUpperCase(), quantity: row.quantity, time: new Date(row.time).toISOString(), ...(row.price ? { price: row.price } : {}) };
    const result = await add({ portfolioId, transactions: [tx] });
    answer(result.data?.addTransactions, result.error);
  };
  const [pasted, setPasted] = useState("");
  const importCsv = async (file: File) => {
    const result = await upload({ portfolioId, file });
    answer(result.data?.importTransactions, result.error);
    return result.data?.importTransactions?.__typename === "Portfolio";
  };
  return (
    <details>
      <summary>Transactions ({transactions.length})</summary>
      <Problem text={problem} />
      <form className="inline" onSubmit={(e) => void submit(e)} aria-label="Add a transaction">
        <select aria-label="Kind" value={row.kind} onChange={(e) => setRow({ ...row, kind: e.target.value as TransactionKind })}>
          {KINDS.map((k) => <option key={k}>{k}</option>)}
        </select>
        <input aria-label="Asset" value={row.asset} onChange={(e) => setRow({ ...row, asset: e.target.value })} size={6} />
        <input aria-label="Quantity" placeholder="quantity" value={row.quantity} onChange={(e) => setRow({ ...row, quantity: e.target.value })} required size={10} />
        <input aria-label="Price" placeholder="price" value={row.price} onChange={(e) => setRow({ ...row, price: e.target.value })} size={10} />
        <input aria-label="Time" type="datetime-local" value={row.time} onChange={(e) => setRow({ ...row, time: e.target.value })} />
        <button disabled={adding}>Add</button>
      </form>
      <label className="file">
        Import a CSV file{" "}
        <input type="file" accept=".csv,text/csv" disabled={uploading} onChange={(e) => {
          const file = e.target.files?.[0];
          if (file) void importCsv(file);
        }} />
      </label>
      <form className="inline" aria-label="Paste CSV" onSubmit={async (e) => {
        e.preventDefault();
        if (await importCsv(new File([pasted], "pasted.csv", { type: "text/csv" }))) setPasted("");
      }}>
        <textarea aria-label="Paste CSV rows" placeholder="kind,asset,quantity,price,fee,time[,note] — a header, then a row per transaction" rows={3} cols={60} value={pasted} onChange={(e) => setPasted(e.target.value)} />
        <button disabled={uploading || !pasted.trim()}>Import rows</button>
      </form>
      <table>
        <thead><tr><th>Time</th><th>Kind</th><th>Asset</th><th>Quantity</th><th>Price</th><th>Fee</th></tr></thead>
        <tbody>
          {transactions.slice(-50).reverse().map((t, i) => (
            <tr key={i}><td>{day(t.time)}</td><td>{t.kind}</td><td>{t.asset}</td><td>{num(t.quantity, 6)}</td><td>{price(t.price)}</td><td>{num(t.fee)}</td></tr>
          ))}
        </tbody>
      </table>
    </details>
  );
}

/** The risk of the portfolio's coins at their weights in it (cash left out, the rest
 * renormalised to 1), and the optimizer over the same coins. */
function Risk({ portfolioId, positions }: { portfolioId: string; positions: { symbol: string; weight: number }[] }) {
  const coins = positions.filter((p) => p.symbol !== "USDT" && p.symbol !== "USD" && p.weight > 0);
  const priced = coins.map((p) => p.symbol);
  const total = coins.reduce((sum, p) => sum + p.weight, 0);
  const weights = coins.map((p) => p.weight / total);
  const risk = useQuery(RiskQuery, { symbols: priced, weights }, priced.length < 2);
  const [objective, setObjective] = useState<Objective>("MAX_SHARPE");
  const optimum = useQuery(OptimizeQuery, { symbols: priced, objective }, priced.length < 2);
  const target = optimum.data?.optimize?.weights.map((w) => ({ symbol: w.symbol, weight: w.weight })) ?? [];
  const plan = useQuery(RebalanceQuery, { portfolioId, targetWeights: target }, target.length === 0);
  const report = risk.data?.riskReport;
  if (priced.length < 2) return <p className="note">Risk and the optimizer need two priced assets.</p>;
  return (
    <>
      <h2>Risk</h2>
      <Problem text={risk.error} />
      {report && (
        <>
          <Metrics rows={[["Volatility", pct(report.volatility)], ["VaR 95 %", pct(report.valueAtRisk)], ["ES 95 %", pct(report.expectedShortfall)], ["Diversification", num(report.diversificationRatio)], ["Observations", String(report.observations)]]} />
          <div className="grid2">
            <table>
              <thead><tr><th>Asset</th><th>Weight</th><th>Marginal risk</th><th>Contribution</th></tr></thead>
              <tbody>{report.contributions.map((c) => <tr key={c.symbol}><td>{c.symbol}</td><td>{pct(c.weight)}</td><td>{num(c.marginalRisk, 4)}</td><td>{pct(c.riskContribution)}</td></tr>)}</tbody>
            </table>
            <CorrelationHeatmap symbols={report.correlation.symbols} matrix={report.correlation.matrix} />
          </div>
        </>
      )}
      <h2>Optimizer</h2>
      <select aria-label="Objective" value={objective} onChange={(e) => setObjective(e.target.value as Objective)}>
        {(["MAX_SHARPE", "MIN_VOLATILITY", "RISK_PARITY", "HRP"] as Objective[]).map((o) => <option key={o}>{o}</option>)}
      </select>
      <Problem text={optimum.error ?? plan.error} />
      {optimum.data?.optimize && (
        <div className="grid2">
          <div>
            <Metrics rows={[["Expected return", pct(optimum.data.optimize.expectedReturn)], ["Volatility", pct(optimum.data.optimize.volatility)], ["Sharpe", num(optimum.data.optimize.sharpe)]]} />
            <table>
              <thead><tr><th>Asset</th><th>Target</th><th>Trade</th><th>Quantity</th><th>Value</th></tr></thead>
              <tbody>
                {target.map((w) => {
                  const trade = plan.data?.rebalance?.trades.find((t) => t.symbol === w.symbol);
                  return <tr key={w.symbol}><td>{w.symbol}</td><td>{pct(w.weight)}</td><td>{trade?.side ?? "—"}</td><td>{num(trade?.quantity, 6)}</td><td>{num(trade?.value)}</td></tr>;
                })}
              </tbody>
            </table>
          </div>
          <Scatter
            xLabel="volatility"
            yLabel="expected return"
            points={(optimum.data.efficientFrontier ?? []).map((p) => ({ x: p.volatility, y: p.expectedReturn }))}
            highlight={{ x: optimum.data.optimize.volatility, y: optimum.data.optimize.expectedReturn }}
          />
        </div>
      )}
    </>
  );
}
