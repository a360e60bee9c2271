// Small hooks over @urql/core: a query that can be run again, a subscription, a mutation.
// Errors come back as the API words them.
import type { AnyVariables, CombinedError, TypedDocumentNode } from "@urql/core";
import { useCallback, useEffect, useRef, useState, useSyncExternalStore } from "react";
import { client, session } from "./client";

export function errorText(error: CombinedError | undefined): string | null {
  if (!error) return null;
  if (error.networkError) return `The server could not be reached: ${error.networkError.message}`;
  return error.graphQLErrors.map((e) => e.message).join("; ") || error.message;
}

export type QueryState<D> = { data: D | undefined; error: string | null; fetching: boolean; again: () => void };

export function useQuery<D, V extends AnyVariables>(
  document: TypedDocumentNode<D, V>,
  variables: V,
  pause = false,
): QueryState<D> {
  const key = JSON.stringify(variables);
  const [state, setState] = useState<{ data?: D; error: string | null; fetching: boolean }>({
    error: null,
    fetching: !pause,
  });
  const [round, setRound] = useState(0);
  useEffect(() => {
    if (pause) return;
    let live = true;
    setState((old) => ({ ...old, fetching: true }));
    client
      .query(document, JSON.parse(key) as V)
      .toPromise()
      .then((result) => {
        if (live) setState({ data: result.data, error: errorText(result.error), fetching: false });
      });
    return () => {
      live = false;
    };
  }, [document, key, pause, round]);
  const again = useCallback(() => setRound((n) => n + 1), []);
  return { ...state, data: state.data, again };
}

export function useSubscription<D, V extends AnyVariables>(
  document: TypedDocumentNode<D, V>,
  variables: V,
  onData: (data: D) => void,
  pause = false,
): string | null {
  const key = JSON.stringify(variables);
  const handler = useRef(onData);
  handler.current = onData;
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    if (pause) return;
    const { unsubscribe } = client.subscription(document, JSON.parse(key) as V).subscribe((result) => {
      setError(errorText(result.error));
      if (result.data) handler.current(result.data);
    });
    return unsubscribe;
  }, [document, key, pause]);
  return error;
}

export function useMutation<D, V extends AnyVariables>(
  document: TypedDocumentNode<D, V>,
): [(variables: V) => Promise<{ data?: D; error: string | null }>, boolean] {
  const [busy, setBusy] = useState(false);
  const run = useCallback(
    async (variables: V) => {
      setBusy(true);
      try {
        const result = await client.mutation(document, variables).toPromise();
        return { data: result.data, error: errorText(result.error) };
      } finally {
        setBusy(false);
      }
    },
    [document],
  );
  return [run, busy];
}

export function useSession() {
  return useSyncExternalStore(session.subscribe, () => session.current);
}

/** What to tell the user when a mutation's answer is not the object asked for: the transport
 * error, or the typed error's message (with the field it names). */
export function refusal(outcome: unknown, error: string | null): string {
  if (error) return error;
  if (outcome && typeof outcome === "object" && "message" in outcome) {
    const field = "field" in outcome && outcome.field ? ` (${String(outcome.field)})` : "";
    return `${String(outcome.message)}${field}`;
  }
  return "The server refused without saying why";
}
