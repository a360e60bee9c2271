// Sign in or register; API keys (the secret shown once).
import { useState } from "react";
import { session } from "../client";
import { Problem } from "../components";
import { day } from "../format";
import type { ApiScope } from "../gql/graphql";
import { refusal, useMutation, useQuery, useSession } from "../hooks";
import { ApiKeysQuery, CreateApiKeyMutation, LoginMutation, RegisterMutation, RevokeApiKeyMutation } from "../operations";

export function SignIn() {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [problem, setProblem] = useState<string | null>(null);
  const [login, busyIn] = useMutation(LoginMutation);
  const [register, busyUp] = useMutation(RegisterMutation);
  const submit = async (how: "login" | "register") => {
    const result = how === "login" ? await login({ email, password }) : await register({ email, password });
    const data = result.data as { login?: Answer; register?: Answer } | undefined;
    const answer = data?.login ?? data?.register;
    if (answer?.__typename === "AuthPayload" && "accessToken" in answer) session.signIn(answer);
    else setProblem(refusal(answer, result.error));
  };
  return (
    <section className="narrow">
      <h1>Sign in</h1>
      <form className="stack" onSubmit={(e) => { e.preventDefault(); void submit("login"); }}>
        <label>Email <input type="email" aria-label="Email" autoComplete="username" value={email} onChange={(e) => setEmail(e.target.value)} required /></label>
        <label>Password <input type="password" aria-label="Password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} required /></label>
        <Problem text={problem} />
        <div>
          <button disabled={busyIn || busyUp}>Sign in</button>{" "}
          <button type="button" disabled={busyIn || busyUp} onClick={() => void submit("register")}>Register</button>
        </div>
      </form>
    </section>
  );
}

type Answer = { __typename: string; message?: string; accessToken: string; refreshToken: string; expiresIn: number; user: { id: string; email: string } };

export function AccountPage() {
  const tokens = useSession();
  const keys = useQuery(ApiKeysQuery, {});
  const [create, creating] = useMutation(CreateApiKeyMutation);
  const [revoke] = useMutation(RevokeApiKeyMutation);
  const [name, setName] = useState("notebook");
  const [trade, setTrade] = useState(false);
  const [secret, setSecret] = useState<string | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  if (!tokens) return <SignIn />;
  const make = async (event: React.FormEvent) => {
    event.preventDefault();
    const scopes: ApiScope[] = trade ? ["READ", "TRADE"] : ["READ"];
    const { data, error } = await create({ name, scopes });
    const outcome = data?.createApiKey;
    if (outcome?.__typename === "CreatedApiKey") {
      setSecret(outcome.key);
      setProblem(null);
      keys.again();
    } else setProblem(refusal(outcome, error));
  };
  return (
    <section>
      <h1>Account <small>{tokens.email}</small></h1>
      <h2>API keys</h2>
      <Problem text={keys.error ?? problem} />
      {secret && <p className="secret" role="status">Copy this key now; it is not shown again: <code>{secret}</code></p>}
      <form className="inline" onSubmit={(e) => void make(e)}>
        <input aria-label="Key name" value={name} onChange={(e) => setName(e.target.value)} required />
        <label><input type="checkbox" checked={trade} onChange={(e) => setTrade(e.target.checked)} /> may trade</label>
        <button disabled={creating}>Create key</button>
      </form>
      <table>
        <thead><tr><th>Name</th><th>Prefix</th><th>Scopes</th><th>Created</th><th>Last used</th><th /></tr></thead>
        <tbody>
          {(keys.data?.apiKeys ?? []).map((k) => (
            <tr key={k.id}>
              <td>{k.name}</td><td><code>{k.prefix}…</code></td><td>{k.scopes.join(", ")}</td><td>{day(k.createdAt)}</td><td>{day(k.lastUsedAt)}</td>
              <td><button onClick={async () => { await revoke({ id: k.id }); keys.again(); }}>Revoke</button></td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
