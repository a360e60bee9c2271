// The signed-in session: tokens kept in localStorage, refreshed before they expire, and
// refreshed at once when a socket is closed with 4403 (its access token expired there first).

export type Tokens = {
  accessToken: string;
  refreshToken: string;
  expiresAt: number; // ms since the epoch, when the access token stops working
  email: string;
};

export type AuthAnswer = {
  accessToken: string;
  refreshToken: string;
  expiresIn: number; // seconds
  user: { email: string };
};

const KEY = "coinql.session";
const MARGIN_MS = 30_000;
const RETRY_MS = 5_000;

/** When to refresh a token that expires at `expiresAt`: a margin before, never in the past,
 * and for short tokens at four fifths of what is left. */
export function refreshDelay(expiresAt: number, now: number): number {
  const left = expiresAt - now;
  if (left <= 0) return 0;
  return Math.max(left - MARGIN_MS, left * 0.8);
}

export function tokensFrom(answer: AuthAnswer, now: number): Tokens {
  return {
    accessToken: answer.accessToken,
    refreshToken: answer.refreshToken,
    expiresAt: now + answer.expiresIn * 1000,
    email: answer.user.email,
  };
}

type Refresher = (refreshToken: string) => Promise<AuthAnswer | string>;

/** One session per page: listeners see sign-in, refresh and sign-out. Tabs share it through
 * localStorage: a tab adopts what another stored, and refreshes take turns across tabs (a
 * refresh token works once; a second use revokes the whole session). */
export class Session {
  private tokens: Tokens | null;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private refreshing: Promise<Tokens | null> | null = null;
  private listeners = new Set<() => void>();
  private refresher: Refresher = async () => "no refresher";
  error: string | null = null;

  constructor(
    private storage: Pick<Storage, "getItem" | "setItem" | "removeItem"> | null,
    private lock: <T>(work: () => Promise<T>) => Promise<T> = (work) => work(),
  ) {
    this.tokens = this.stored();
  }

  /** Start refreshing through `refresher` (the API's refreshToken mutation). */
  start(refresher: Refresher): void {
    this.refresher = refresher;
    this.schedule();
  }

  get current(): Tokens | null {
    return this.tokens;
  }

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  signIn(answer: AuthAnswer): void {
    this.set(tokensFrom(answer, Date.now()));
  }

  signOut(reason: string | null = null): void {
    this.error = reason;
    this.set(null);
  }

  /** Another tab stored new tokens (or signed out): take them as they are. */
  adopt(): void {
    const stored = this.stored();
    if (stored?.accessToken === this.tokens?.accessToken) return;
    this.tokens = stored;
    this.schedule();
    this.notify();
  }

  /** A token that works now: refreshed first if it expires within a few seconds. */
  async fresh(): Promise<Tokens | null> {
    if (this.refreshing) return this.refreshing;
    if (this.tokens && this.tokens.expiresAt - Date.now() < 5_000) return this.refresh();
    return this.tokens;
  }

  /** Refresh now; concurrent callers share one request, and tabs take turns. */
  refresh(): Promise<Tokens | null> {
    if (!this.tokens) return Promise.resolve(null);
    const spent = this.tokens.refreshToken; // what this call means to replace
    this.refreshing ??= this.lock(() => this.refreshOnce(spent))
      .catch(() => {
        this.retrySoon(); // the network failed: keep the tokens and try again shortly
        return this.tokens;
      })
      .finally(() => {
        this.refreshing = null;
      });
    return this.refreshing;
  }

  private async refreshOnce(spent: string): Promise<Tokens | null> {
    this.adopt(); // another tab may have refreshed (or signed out) while this one waited
    if (this.tokens?.refreshToken !== spent) {
      if (!this.tokens || this.tokens.expiresAt - Date.now() > 5_000) return this.tokens;
    }
    const tokens = this.tokens;
    if (!tokens) return null;
    const answer = await this.refresher(tokens.refreshToken);
    if (this.tokens?.refreshToken !== tokens.refreshToken) return this.tokens; // signed out or in meanwhile
    if (typeof answer === "string") {
      this.signOut(`Signed out: ${answer}`);
      return null;
    }
    this.set({ ...tokensFrom(answer, Date.now()), email: tokens.email });
    return this.tokens;
  }

  private stored(): Tokens | null {
    const saved = this.storage?.getItem(KEY);
    if (!saved) return null;
    try {
      return JSON.parse(saved) as Tokens;
    } catch {
      this.storage?.removeItem(KEY);
      return null;
    }
  }

  private set(tokens: Tokens | null): void {
    this.tokens = tokens;
    if (tokens) this.storage?.setItem(KEY, JSON.stringify(tokens));
    else this.storage?.removeItem(KEY);
    this.schedule();
    this.notify();
  }

  private notify(): void {
    for (const listener of this.listeners) listener();
  }

  private schedule(): void {
    clearTimeout(this.timer);
    if (!this.tokens) return;
    this.timer = setTimeout(() => void this.refresh(), refreshDelay(this.tokens.expiresAt, Date.now()));
  }

  private retrySoon(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.refresh(), RETRY_MS);
  }
}
