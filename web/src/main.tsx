// The dashboard: a hash router over the pages, the session in the header.
import { Component, StrictMode, useEffect, useState, type ReactNode } from "react";
import { createRoot } from "react-dom/client";
import { client, session } from "./client";
import { DemoLabel } from "./components";
import { useQuery, useSession } from "./hooks";
import { LogoutMutation, ServerInfoQuery } from "./operations";
import { AccountPage, SignIn } from "./pages/Account";
import { AlertsPage } from "./pages/Alerts";
import { AssetPage } from "./pages/Asset";
import { BacktestsPage } from "./pages/Backtests";
import { BotsPage } from "./pages/Bots";
import { MarketsPage } from "./pages/Markets";
import { PortfolioPage } from "./pages/Portfolio";
import "./style.css";

function useRoute(): string[] {
  const read = () => window.location.hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const onChange = () => setRoute(read());
    window.addEventListener("hashchange", onChange);
    return () => window.removeEventListener("hashchange", onChange);
  }, []);
  return route;
}

const PAGES: [string, string][] = [
  ["markets", "Markets"],
  ["portfolio", "Portfolio"],
  ["backtests", "Backtests"],
  ["bots", "Bots"],
  ["alerts", "Alerts"],
  ["account", "Account"],
];

function Page({ route }: { route: string[] }) {
  const signedIn = useSession() !== null;
  const [page = "markets", ...rest] = route;
  if (page === "markets") return <MarketsPage />;
  if (page === "asset") return <AssetPage key={rest[0] ?? "BTC"} symbol={rest[0] ?? "BTC"} />;
  if (!signedIn) return <SignIn />;
  if (page === "portfolio") return <PortfolioPage id={rest[0]} />;
  if (page === "backtests") return <BacktestsPage runId={rest[0]} />;
  if (page === "bots") return <BotsPage id={rest[0]} />;
  if (page === "alerts") return <AlertsPage />;
  if (page === "account") return <AccountPage />;
  return <p>No page “{page}”.</p>;
}

/** A page that throws shows what broke instead of blanking the whole app. */
class Contained extends Component<{ children: ReactNode; route: string }, { error: Error | null }> {
  state = { error: null as Error | null };
  static getDerivedStateFromError(error: Error) {
    return { error };
  }
  componentDidUpdate(previous: { route: string }) {
    if (previous.route !== this.props.route && this.state.error) this.setState({ error: null });
  }
  render() {
    if (this.state.error) return <p className="problem" role="alert">This page failed: {this.state.error.message}</p>;
    return this.props.children;
  }
}

function App() {
  const route = useRoute();
  const tokens = useSession();
  const info = useQuery(ServerInfoQuery, {});
  const signOut = async () => {
    if (tokens) await client.mutation(LogoutMutation, { refreshToken: tokens.refreshToken }).toPromise();
    session.signOut();
  };
  return (
    <>
      <header>
        <a className="brand" href="#/markets">coinql</a>
        <nav>
          {PAGES.map(([path, name]) => (
            <a key={path} href={`#/${path}`} aria-current={(route[0] ?? "markets") === path ? "page" : undefined}>{name}</a>
          ))}
          <a href="/graphql">GraphiQL</a>
        </nav>
        <span className="who">
          <DemoLabel source={info.data?.serverInfo.dataSource} />
          {tokens ? (
            <>
              {tokens.email} <button onClick={() => void signOut()}>Sign out</button>
            </>
          ) : (
            <a href="#/account">Sign in</a>
          )}
        </span>
      </header>
      <main>
        {session.error && !tokens && <p className="problem">{session.error}</p>}
        <Contained route={route.join("/")}>
          <Page route={route} />
        </Contained>
      </main>
    </>
  );
}

createRoot(document.getElementById("app")!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
