// The API client: queries and mutations over HTTP, subscriptions over graphql-ws on the same
// /graphql path, both with the session's token. A socket closed with 4403 (its token expired)
// reconnects with a refreshed token and resubscribes.
import { Client, fetchExchange, subscriptionExchange } from "@urql/core";
import type { ResultOf } from "@graphql-typed-document-node/core";
import { print } from "graphql";
import { createClient as createWsClient } from "graphql-ws";
import { RefreshMutation } from "./operations";
import { Session } from "./session";

// Refreshes take turns across tabs (Web Locks where the browser has them).
// Without them (plain HTTP off localhost), a random pause of up to 2 s first, so that tabs
// whose timers fire together mostly see each other's answer instead of spending it twice.
const acrossTabs = <T,>(work: () => Promise<T>): Promise<T> =>
  typeof navigator !== "undefined" && navigator.locks
    ? (navigator.locks.request("coinql.refresh", work) as Promise<T>)
    : new Promise((resolve) => setTimeout(resolve, Math.random() * 2_000)).then(work);

export const session = new Session(typeof localStorage === "undefined" ? null : localStorage, acrossTabs);
if (typeof window !== "undefined") {
  window.addEventListener("storage", (event) => {
    if (event.key === "coinql.session") session.adopt();
  });
}

const FORBIDDEN = 4403;
let socketToken: string | undefined; // the token the open socket signed in with

function wsUrl(): string {
  const { protocol, host } = window.location;
  return `${protocol === "https:" ? "wss:" : "ws:"}//${host}/graphql`;
}

export const sockets = createWsClient({
  url: wsUrl,
  lazy: true,
  retryAttempts: Infinity,
  shouldRetry: () => true,
  retryWait: async (retries) => {
    await new Promise((resolve) => setTimeout(resolve, Math.min(500 * 2 ** retries, 10_000)));
  },
  connectionParams: async () => {
    const tokens = await session.fresh();
    return tokens ? { Authorization: `Bearer ${tokens.accessToken}` } : {};
  },
  on: {
    connected: () => {
      socketToken = session.current?.accessToken;
    },
    closed: (event) => {
      // Expired on this socket: refresh, unless a refresh has already replaced its token.
      if ((event as CloseEvent).code === FORBIDDEN && socketToken === session.current?.accessToken) {
        void session.refresh();
      }
    },
  },
});

// Signing in or out changes what the socket may see: start it again with the new token.
let lastToken = session.current?.accessToken;
session.subscribe(() => {
  const token = session.current?.accessToken;
  if (token !== lastToken && (lastToken === undefined || token === undefined)) sockets.terminate();
  lastToken = token;
});

export const client = new Client({
  url: "/graphql",
  requestPolicy: "network-only",
  preferGetMethod: false,
  // Every request awaits a token that works (refreshed first when it is about to expire).
  fetch: async (input, init) => {
    const tokens = await session.fresh();
    const headers = new Headers(init?.headers);
    if (tokens) headers.set("Authorization", `Bearer ${tokens.accessToken}`);
    headers.set("X-Requested-With", "XMLHttpRequest"); // uploads: coinql's CSRF check
    return fetch(input, { ...init, headers });
  },
  exchanges: [
    fetchExchange,
    subscriptionExchange({
      forwardSubscription: (request) => ({
        subscribe: (sink) => ({ unsubscribe: sockets.subscribe({ ...request, query: request.query ?? "" }, sink) }),
      }),
    }),
  ],
});

// The refresh goes around the client: the client's requests wait for a fresh token, and the
// refresh itself must not wait for itself.
session.start(async (refreshToken) => {
  const response = await fetch("/graphql", {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Requested-With": "XMLHttpRequest" },
    body: JSON.stringify({ query: print(RefreshMutation), variables: { refreshToken } }),
  });
  if (response.status >= 500) throw new Error(`the server answered ${response.status}`);
  const result = (await response.json()) as { data?: ResultOf<typeof RefreshMutation>; errors?: { message: string }[] };
  const answer = result.data?.refreshToken;
  if (answer?.__typename === "AuthPayload") return answer;
  if (answer && "message" in answer) return answer.message;
  return result.errors?.map((e) => e.message).join("; ") ?? "refresh refused";
});
