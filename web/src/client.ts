// The API client: queries and mutations over HTTP, subscriptions over graphql-ws on the same
// /graphql path, both with the session's token. A socket closed with 4403 (its token expired)
// reconnects with a refreshed token and resubscribes.
import { Client, fetchExchange, subscriptionExchange } from "@urql/core";
import { createClient as createWsClient } from "graphql-ws";
import { RefreshMutation } from "./operations";
import { Session } from "./session";

export const session = new Session(typeof localStorage === "undefined" ? null : localStorage);

const FORBIDDEN = 4403;

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
    closed: (event) => {
      if ((event as CloseEvent).code === FORBIDDEN) void session.refresh();
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
  fetchOptions: () => {
    const token = session.current?.accessToken;
    const headers: Record<string, string> = token ? { Authorization: `Bearer ${token}` } : {};
    return { headers };
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

session.start(async (refreshToken) => {
  const result = await client.mutation(RefreshMutation, { refreshToken }).toPromise();
  const answer = result.data?.refreshToken;
  if (answer?.__typename === "AuthPayload") return answer;
  if (result.error?.networkError) throw result.error.networkError;
  return answer && "message" in answer ? answer.message : (result.error?.message ?? "refresh refused");
});
