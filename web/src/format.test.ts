import { describe, expect, it } from "vitest";
import { DAY_MS, change24h, heat, num, pct, points, sparkline } from "./format";
import { Session, refreshDelay } from "./session";

describe("numbers", () => {
  it("shows undefined metrics as a dash, never NaN", () => {
    expect(num(null)).toBe("—");
    expect(num(Number.NaN)).toBe("—");
    expect(pct(undefined)).toBe("—");
    expect(num("1234.5")).toBe("1,234.50");
    expect(pct(0.1234)).toBe("12.34%");
  });
});

describe("change24h", () => {
  const day0 = Date.UTC(2021, 0, 1);
  const stamps = [day0, day0 + DAY_MS, day0 + 2 * DAY_MS];
  it("compares with the last candle closed a day before now", () => {
    // now is 2021-01-04 12:00: 24 h before is 01-03 12:00; the candle of 01-02 closed at 01-03 00:00
    const now = day0 + 3.5 * DAY_MS;
    expect(change24h(stamps, [100, 200, 300], 220, now)).toBeCloseTo(0.1);
  });
  it("is null without a price or without history", () => {
    expect(change24h(stamps, [100, 200, 300], null, day0)).toBeNull();
    expect(change24h(stamps, [100, 200, 300], 1, day0)).toBeNull();
  });
});

describe("charts", () => {
  it("draws a sparkline over the box and skips nulls", () => {
    expect(sparkline([1, null, 3], 10, 10)).toBe("0.0,10.0 10.0,0.0");
    expect(sparkline([1], 10, 10)).toBe("");
  });
  it("keeps chart points finite and in seconds", () => {
    expect(points([1000, 2000, 3000], [1, null, 2])).toEqual([
      { time: 1, value: 1 },
      { time: 3, value: 2 },
    ]);
  });
  it("colours gains green and losses red, saturating", () => {
    expect(heat(0.5)).toBe("rgba(22, 163, 74, 0.85)");
    expect(heat(-0.05)).toMatch(/^rgba\(220, 38, 38/);
    expect(heat(null)).toBe("transparent");
  });
});

describe("session", () => {
  it("refreshes before expiry, never in the past", () => {
    expect(refreshDelay(1_000_000 + 900_000, 1_000_000)).toBe(870_000);
    expect(refreshDelay(1_000_000 + 10_000, 1_000_000)).toBe(8_000);
    expect(refreshDelay(500, 1_000)).toBe(0);
  });

  it("shares one refresh between callers and signs out when it is refused", async () => {
    const store = new Map<string, string>();
    const storage = {
      getItem: (k: string) => store.get(k) ?? null,
      setItem: (k: string, v: string) => void store.set(k, v),
      removeItem: (k: string) => void store.delete(k),
    };
    const session = new Session(storage);
    let calls = 0;
    session.start(async (token) => {
      calls += 1;
      return token === "r1" ? { accessToken: "a2", refreshToken: "r2", expiresIn: 900, user: { email: "ada@example.com" } } : "refresh token revoked";
    });
    session.signIn({ accessToken: "a1", refreshToken: "r1", expiresIn: 900, user: { email: "ada@example.com" } });
    const [one, two] = await Promise.all([session.refresh(), session.refresh()]);
    expect(calls).toBe(1);
    expect(one?.accessToken).toBe("a2");
    expect(two).toBe(one);
    expect(JSON.parse(store.get("coinql.session") ?? "{}").refreshToken).toBe("r2");
    expect(await session.refresh()).toBeNull(); // r2 is refused
    expect(session.current).toBeNull();
    expect(session.error).toBe("Signed out: refresh token revoked");
    expect(store.has("coinql.session")).toBe(false);
    session.signOut();
  });
});

describe("the forming candle", () => {
  const day = 86_400;
  it("grows the day's bar with each minute and starts a new one the next day", async () => {
    const { foldBar } = await import("./format");
    const today = { time: 10 * day, open: 100, high: 110, low: 95, close: 105 };
    const minute = { time: 10 * day + 600, open: 105, high: 120, low: 104, close: 118 };
    expect(foldBar(today, minute, day)).toEqual({ time: 10 * day, open: 100, high: 120, low: 95, close: 118 });
    const tomorrow = { time: 11 * day + 60, open: 118, high: 119, low: 117, close: 117.5 };
    expect(foldBar(today, tomorrow, day)).toEqual({ ...tomorrow, time: 11 * day });
  });
});

describe("a session shared by tabs", () => {
  const memory = () => {
    const store = new Map<string, string>();
    return {
      store,
      getItem: (k: string) => store.get(k) ?? null,
      setItem: (k: string, v: string) => void store.set(k, v),
      removeItem: (k: string) => void store.delete(k),
    };
  };
  const answer = (n: number) => ({ accessToken: `a${n}`, refreshToken: `r${n}`, expiresIn: 900, user: { email: "ada@example.com" } });

  it("adopts the tokens another tab refreshed instead of spending the old refresh token", async () => {
    const storage = memory();
    const one = new Session(storage);
    const two = new Session(storage);
    const used: string[] = [];
    const refresher = async (token: string) => {
      used.push(token);
      return answer(Number(token.slice(1)) + 1);
    };
    one.start(refresher);
    two.start(refresher);
    one.signIn(answer(1));
    two.adopt(); // the storage event
    expect(two.current?.refreshToken).toBe("r1");
    await one.refresh(); // r1 -> r2, stored
    await two.refresh(); // sees r2 stored: adopts it, spends nothing
    expect(used).toEqual(["r1"]);
    expect(two.current?.accessToken).toBe("a2");
    one.signOut();
    two.adopt();
    expect(two.current).toBeNull();
  });

  it("ignores a refresh answer that lands after signing out", async () => {
    let release: (value: ReturnType<typeof answer>) => void = () => {};
    const session = new Session(memory());
    session.start(() => new Promise((resolve) => (release = resolve)));
    session.signIn(answer(1));
    const pending = session.refresh();
    session.signOut();
    release(answer(2));
    expect(await pending).toBeNull();
    expect(session.current).toBeNull();
  });
});

