// Markets: the universe with live prices (the `prices` subscription), 24 h change, sparklines.
import { useMemo, useState } from "react";
import { DemoLabel, Problem, Sparkline } from "../components";
import { DAY_MS, change24h, pct, price } from "../format";
import { useQuery, useSubscription } from "../hooks";
import { MarketsQuery, PricesSubscription, ServerInfoQuery } from "../operations";

export function MarketsPage() {
  const since = useMemo(() => new Date(Date.now() - 30 * DAY_MS).toISOString(), []);
  const markets = useQuery(MarketsQuery, { since });
  const assets = markets.data?.assets?.edges.map((e) => e.node) ?? [];
  const info = useQuery(ServerInfoQuery, {});
  // Only what the feed publishes: one coin it does not would refuse the whole subscription.
  const published = new Set(info.data?.serverInfo.liveSymbols ?? []);
  const symbols = assets.map((a) => a.symbol).filter((symbol) => published.has(symbol));
  const [live, setLive] = useState<Record<string, { price: number; at: string; source: string }>>({});
  const socketError = useSubscription(
    PricesSubscription,
    { symbols },
    (data) => setLive((old) => ({ ...old, [data.prices.symbol]: { price: data.prices.price, at: data.prices.timestamp, source: data.prices.source } })),
    symbols.length === 0,
  );
  return (
    <section>
      <h1>Markets</h1>
      <Problem text={markets.error ?? socketError} />
      <table className="markets">
        <thead>
          <tr><th>#</th><th>Asset</th><th>Price</th><th>24 h</th><th>30 days</th><th>Market cap</th><th>Source</th></tr>
        </thead>
        <tbody>
          {assets.map((asset) => {
            const tick = live[asset.symbol];
            const last = tick?.price ?? asset.lastPrice;
            const closes = asset.daily?.close ?? [];
            const change = change24h(asset.daily?.timestamps ?? [], closes, last, Date.now());
            return (
              <tr key={asset.id} data-symbol={asset.symbol}>
                <td>{asset.rank ?? ""}</td>
                <td><a href={`#/asset/${asset.symbol}`}><b>{asset.symbol}</b> {asset.name}</a></td>
                <td className="price" data-live={tick ? "yes" : "no"}>{price(last)}</td>
                <td className={change === null ? "" : change >= 0 ? "up" : "down"}>{pct(change)}</td>
                <td><Sparkline values={last === null || last === undefined ? closes : [...closes, last]} /></td>
                <td>{asset.marketCap ? `$${(asset.marketCap / 1e9).toFixed(1)} bn` : "—"}</td>
                <td>{asset.dataSource} <DemoLabel source={tick?.source ?? asset.dataSource} /></td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {markets.fetching && <p>Loading…</p>}
    </section>
  );
}
