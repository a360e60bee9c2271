// Bots: create, start, pause, stop; live orders and fills (`botEvents`); divergence from the
// backtest; an emergency stop that asks first.
import { useState } from "react";
import { Metrics, Problem } from "../components";
import { day, num, pct, price } from "../format";
import type { Interval } from "../gql/graphql";
import { refusal, useMutation, useQuery, useSubscription } from "../hooks";
import {
  BotControlMutation,
  BotEventsSubscription,
  BotQuery,
  BotsQuery,
  CreateBotMutation,
  CreateStrategyMutation,
  EmergencyStopMutation,
  StrategiesQuery,
} from "../operations";

export function BotsPage({ id }: { id?: string }) {
  const bots = useQuery(BotsQuery, {});
  const [stop, stopping] = useMutation(EmergencyStopMutation);
  const [report, setReport] = useState<string | null>(null);
  const list = bots.data?.bots?.edges.map((e) => e.node) ?? [];
  const emergency = async () => {
    const close = window.confirm("Stop every bot, cancel their open orders and close their positions?");
    if (!close) return;
    const { data, error } = await stop({ closePositions: true });
    const outcome = data?.emergencyStop;
    setReport(outcome?.__typename === "EmergencyStopResult" ? `Stopped ${outcome.botsStopped} bots, cancelled ${outcome.ordersCancelled} orders, closed ${outcome.positionsClosed} positions.` : refusal(outcome, error));
    bots.again();
  };
  return (
    <section>
      <h1>Bots <button className="danger" disabled={stopping} onClick={() => void emergency()}>Emergency stop</button></h1>
      <Problem text={bots.error} />
      {report && <p role="status">{report}</p>}
      <table>
        <thead><tr><th>Bot</th><th>Mode</th><th>Status</th><th>Symbol</th><th>Value</th><th>Realized</th><th>Unrealized</th><th>Fees</th></tr></thead>
        <tbody>
          {list.map((b) => (
            <tr key={b.id}>
              <td><a href={`#/bots/${b.id}`}>{b.name}</a></td><td>{b.mode}</td><td title={b.reason ?? ""}>{b.status}</td><td>{b.symbol} {b.interval}</td>
              <td>{num(b.value)}</td><td>{num(b.realizedPnl)}</td><td>{num(b.unrealizedPnl)}</td><td>{num(b.feesPaid)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <NewBot onCreated={bots.again} />
      {id && <BotView key={id} id={id} onChange={bots.again} />}
    </section>
  );
}

function NewBot({ onCreated }: { onCreated: () => void }) {
  const strategies = useQuery(StrategiesQuery, {});
  const [createStrategy] = useMutation(CreateStrategyMutation);
  const [createBot, busy] = useMutation(CreateBotMutation);
  const [form, setForm] = useState({ name: "SMA bot", strategyId: "", symbol: "BTC", interval: "M1" as Interval, capital: "1000" });
  const [problem, setProblem] = useState<string | null>(null);
  const list = strategies.data?.strategies?.edges.map((e) => e.node) ?? [];
  const submit = async (event: React.FormEvent) => {
    event.preventDefault();
    let strategyId = form.strategyId || list[0]?.id;
    if (!strategyId) {
      const made = (await createStrategy({ input: { name: "SMA 5/20", kind: { smaCross: { fast: 5, slow: 20 } } } })).data?.createStrategy;
      if (made?.__typename !== "Strategy") return setProblem(refusal(made, null));
      strategyId = made.id;
      strategies.again();
    }
    const { data, error } = await createBot({ input: { name: form.name, strategyId, symbol: form.symbol, interval: form.interval, capital: form.capital, mode: "PAPER" } });
    const outcome = data?.createBot;
    if (outcome?.__typename === "Bot") {
      setProblem(null);
      onCreated();
      window.location.hash = `#/bots/${outcome.id}`;
    } else setProblem(refusal(outcome, error));
  };
  return (
    <form className="inline" onSubmit={(e) => void submit(e)} aria-label="New paper bot">
      <input aria-label="Bot name" value={form.name} onChange={(e) => setForm({ ...form, name: e.target.value })} />
      <select aria-label="Bot strategy" value={form.strategyId} onChange={(e) => setForm({ ...form, strategyId: e.target.value })}>
        <option value="">{list.length ? "first strategy" : "SMA 5/20 (new)"}</option>
        {list.map((s) => <option key={s.id} value={s.id}>{s.name}</option>)}
      </select>
      <input aria-label="Bot symbol" value={form.symbol} onChange={(e) => setForm({ ...form, symbol: e.target.value.toUpperCase() })} size={5} />
      <select aria-label="Bot interval" value={form.interval} onChange={(e) => setForm({ ...form, interval: e.target.value as Interval })}>
        {(["M1", "M5", "M15", "H1", "H4", "D1"] as Interval[]).map((i) => <option key={i}>{i}</option>)}
      </select>
      <input aria-label="Capital" value={form.capital} onChange={(e) => setForm({ ...form, capital: e.target.value })} size={8} />
      <button disabled={busy}>New paper bot</button>
      <Problem text={problem} />
    </form>
  );
}

type Event = { __typename: string; timestamp: string; [key: string]: unknown };

function BotView({ id, onChange }: { id: string; onChange: () => void }) {
  const bot = useQuery(BotQuery, { id });
  const [control, busy] = useMutation(BotControlMutation);
  const [events, setEvents] = useState<Event[]>([]);
  const [problem, setProblem] = useState<string | null>(null);
  const socketError = useSubscription(BotEventsSubscription, { botId: id }, (data) => {
    setEvents((old) => [data.botEvents as Event, ...old].slice(0, 100));
    if (data.botEvents.__typename !== "BotValueEvent") bot.again();
  });
  const b = bot.data?.bot;
  if (!b) return <Problem text={bot.error ?? (bot.fetching ? null : `No bot ${id}`)} />;
  const act = async (what: "start" | "pause" | "stop") => {
    const { data, error } = await control({ id, start: what === "start", pause: what === "pause", stop: what === "stop" });
    const outcome = data?.startBot ?? data?.pauseBot ?? data?.stopBot;
    setProblem(error ?? (outcome && "message" in outcome ? outcome.message : null));
    bot.again();
    onChange();
  };
  const d = b.divergence;
  return (
    <article>
      <h2>{b.name} <small>{b.mode} · {b.symbol} {b.interval} · <span data-testid="bot-status">{b.status}</span></small></h2>
      {b.reason && <p className="note">{b.reason}</p>}
      <p>
        <button disabled={busy} onClick={() => void act("start")}>Start</button>{" "}
        <button disabled={busy} onClick={() => void act("pause")}>Pause</button>{" "}
        <button disabled={busy} onClick={() => void act("stop")}>Stop</button>
      </p>
      <Problem text={problem ?? socketError} />
      <Metrics rows={[["Value", num(b.value)], ["Cash", num(b.cash)], ["Position", num(b.position?.quantity, 6)], ["Realized", num(b.realizedPnl)], ["Unrealized", num(b.unrealizedPnl)], ["Fees", num(b.feesPaid)]]} />
      {d && (
        <>
          <h3>Divergence from its backtest</h3>
          <Metrics rows={[["Backtest return", pct(d.backtestReturn)], ["Bot return", pct(d.botReturn)], ["Trades compared", String(d.tradesCompared)], ["Differing", String(d.differingTrades)]]} />
          <ul>{d.differences.map((x) => <li key={x.index}>Trade {x.index + 1}: {x.kind} — {x.detail}</li>)}</ul>
        </>
      )}
      <div className="grid2">
        <div>
          <h3>Orders</h3>
          <table>
            <thead><tr><th>Time</th><th>Side</th><th>Type</th><th>Status</th><th>Quantity</th><th>Filled</th><th>Price</th></tr></thead>
            <tbody>{(b.orders?.edges ?? []).map(({ node: o }) => <tr key={o.id}><td>{day(o.createdAt)}</td><td>{o.side}</td><td>{o.type}</td><td>{o.status}</td><td>{num(o.quantity, 6)}</td><td>{num(o.filledQuantity, 6)}</td><td>{price(o.averagePrice ?? o.price)}</td></tr>)}</tbody>
          </table>
          <h3>Fills</h3>
          <table>
            <thead><tr><th>Time</th><th>Side</th><th>Price</th><th>Quantity</th><th>Fee</th></tr></thead>
            <tbody>{(b.fills ?? []).map((f) => <tr key={f.id}><td>{day(f.time)}</td><td>{f.side}</td><td>{price(f.price)}</td><td>{num(f.quantity, 6)}</td><td>{num(f.fee, 4)}</td></tr>)}</tbody>
          </table>
        </div>
        <div>
          <h3>Live events</h3>
          <ol className="events" aria-label="Bot events">
            {events.map((e, i) => <li key={i}><code>{e.__typename.replace("Event", "")}</code> {new Date(e.timestamp).toLocaleTimeString()} {["side", "status", "price", "quantity", "value"].filter((k) => e[k] != null).map((k) => `${k} ${String(e[k])}`).join(" · ")}</li>)}
          </ol>
        </div>
      </div>
    </article>
  );
}
