// GraphiQL at /graphql, built from the npm packages into coinql's own bundle: nothing is
// fetched from a CDN. Tabs hold the contract's operations (served by coinql from its contract
// folder), the headers carry the dashboard's token, and subscriptions run over graphql-ws.
import { explorerPlugin } from "@graphiql/plugin-explorer";
import "@graphiql/plugin-explorer/style.css";
import type { Fetcher } from "@graphiql/toolkit";
import { GraphiQL } from "graphiql";
import "graphiql/style.css";
import { getOperationAST, parse } from "graphql";
import { createClient, type Client } from "graphql-ws";
import { createElement } from "react";
import { createRoot } from "react-dom/client";

type Tab = { query: string; variables?: string; headers?: string };

const sockets = new Map<string, Client>();

function socketFor(authorization: string | undefined): Client {
  const key = authorization ?? "";
  let client = sockets.get(key);
  if (!client) {
    const { protocol, host } = window.location;
    client = createClient({
      url: `${protocol === "https:" ? "wss:" : "ws:"}//${host}/graphql`,
      connectionParams: authorization ? { Authorization: authorization } : {},
      lazy: true,
    });
    sockets.set(key, client);
  }
  return client;
}

function isSubscription(query: string, operationName?: string | null): boolean {
  try {
    return getOperationAST(parse(query), operationName ?? undefined)?.operation === "subscription";
  } catch {
    return false; // the server answers a query it cannot parse with the reason
  }
}

const fetcher: Fetcher = (params, options) => {
  const headers: Record<string, string> = { ...((options?.headers as Record<string, string> | undefined) ?? {}) };
  if (isSubscription(params.query, params.operationName)) {
    const stream = socketFor(headers.Authorization ?? headers.authorization).iterate({
      query: params.query,
      variables: params.variables ?? undefined,
      operationName: params.operationName ?? undefined,
    });
    return stream as unknown as ReturnType<Fetcher>;
  }
  return fetch("/graphql", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json", ...headers },
    body: JSON.stringify(params),
  }).then((response) => response.json());
};

function signedInHeaders(): string | undefined {
  try {
    const saved = JSON.parse(localStorage.getItem("coinql.session") ?? "null") as { accessToken?: string } | null;
    return saved?.accessToken ? JSON.stringify({ Authorization: `Bearer ${saved.accessToken}` }, null, 2) : undefined;
  } catch {
    return undefined;
  }
}

async function start(): Promise<void> {
  let tabs: Tab[] = [];
  try {
    const response = await fetch("/graphiql/operations.json");
    if (response.ok) tabs = (await response.json()) as Tab[];
  } catch {
    tabs = [];
  }
  const headers = signedInHeaders();
  const defaultTabs = (tabs.length ? tabs : [{ query: "query ServerInfo {\n  serverInfo { version database broadcast jobQueue dataSource }\n}\n" }]).map(
    (tab) => ({ ...tab, ...(headers ? { headers } : {}) }),
  );
  createRoot(document.getElementById("graphiql")!).render(
    createElement(GraphiQL, {
      fetcher,
      defaultTabs,
      defaultHeaders: headers,
      plugins: [explorerPlugin()],
      shouldPersistHeaders: false,
    }),
  );
}

void start();
