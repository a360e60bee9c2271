// Alerts raised by risk limits: those stored, and new ones as they come (`riskAlerts`).
import { useState } from "react";
import { Problem } from "../components";
import { num } from "../format";
import { useQuery, useSubscription } from "../hooks";
import { AlertsQuery, AlertsSubscription } from "../operations";

type Alert = { portfolioId: string; limit: string; observed: number; threshold: number; triggeredAt: string };

export function AlertsPage() {
  const stored = useQuery(AlertsQuery, {});
  const [fresh, setFresh] = useState<Alert[]>([]);
  const socketError = useSubscription(AlertsSubscription, {}, (data) => setFresh((old) => [data.riskAlerts, ...old]));
  const alerts = [...fresh, ...(stored.data?.alerts ?? [])];
  return (
    <section>
      <h1>Alerts</h1>
      <Problem text={stored.error ?? socketError} />
      {alerts.length === 0 && <p className="note">No alerts. Set risk limits on a portfolio to be told when they are crossed.</p>}
      <table>
        <thead><tr><th>When</th><th>Portfolio</th><th>Limit</th><th>Observed</th><th>Threshold</th></tr></thead>
        <tbody>
          {alerts.map((a, i) => (
            <tr key={i} className={i < fresh.length ? "new" : ""}>
              <td>{new Date(a.triggeredAt).toLocaleString()}</td><td><a href={`#/portfolio/${a.portfolioId}`}>{a.portfolioId.slice(0, 8)}</a></td><td>{a.limit}</td><td>{num(a.observed, 4)}</td><td>{num(a.threshold, 4)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
