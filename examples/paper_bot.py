"""Start a paper bot on the demo feed and print its events (orders, fills, status, value) as
they come; stop it after --seconds (default: run until interrupted).

    COINQL_API_KEY=cq_... python examples/paper_bot.py --seconds 60

The key needs the TRADE scope. On the demo market, COINQL_DEMO_SPEED=60 on the server makes an
M1 bot trade within a minute or two.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from _client import http_client, socket_client
from gql import gql

STRATEGY = gql("""
mutation Strategy {
  createStrategy(input: {name: "SMA 3/8", kind: {smaCross: {fast: 3, slow: 8}}}) {
    __typename ... on Strategy { id } ... on Error { message }
  }
}
""")
BOT = gql("""
mutation Bot($strategyId: ID!) {
  createBot(input: {name: "example", strategyId: $strategyId, symbol: "BTC", interval: M1,
                    capital: "10000"}) {
    __typename ... on Bot { id } ... on Error { message }
  }
}
""")
START = gql("""
mutation Start($id: ID!) {
  startBot(id: $id) { __typename ... on Bot { status } ... on Error { message } }
}
""")
STOP = gql("""
mutation Stop($id: ID!) {
  stopBot(id: $id) { __typename ... on Bot { status } ... on Error { message } }
}
""")
EVENTS = gql("""
subscription Events($botId: ID!) {
  botEvents(botId: $botId) {
    __typename timestamp
    ... on OrderEvent { side status quantity price }
    ... on FillEvent { side quantity price fee }
    ... on BotStatusEvent { status reason }
    ... on BotValueEvent { value unrealizedPnl }
  }
}
""")


def created(answer: dict[str, object], name: str) -> str:
    if answer["__typename"] == "Error" or "id" not in answer:
        raise SystemExit(f"{name} refused: {answer.get('message')}")
    return str(answer["id"])


async def watch(bot_id: str) -> None:
    async with socket_client() as socket:
        async for update in socket.subscribe(EVENTS, variable_values={"botId": bot_id}):
            event = update["botEvents"]
            kind = event.pop("__typename").removesuffix("Event")
            details = " ".join(
                f"{key}={value}" for key, value in event.items() if key != "timestamp"
            )
            print(f"{event['timestamp']} {kind:<8} {details}", flush=True)


async def main(seconds: float | None) -> int:
    async with http_client() as http:
        strategy = created((await http.execute(STRATEGY))["createStrategy"], "createStrategy")
        bot_id = created(
            (await http.execute(BOT, variable_values={"strategyId": strategy}))["createBot"],
            "createBot",
        )
        print(f"bot {bot_id}", flush=True)
        watching = asyncio.create_task(watch(bot_id))
        await asyncio.sleep(0.5)  # subscribed before it starts: its first events are seen too
        started = (await http.execute(START, variable_values={"id": bot_id}))["startBot"]
        print(f"started: {started.get('status') or started.get('message')}", flush=True)
        try:
            await asyncio.wait_for(asyncio.shield(watching), timeout=seconds)
        except TimeoutError:
            pass
        finally:
            stopped = (await http.execute(STOP, variable_values={"id": bot_id}))["stopBot"]
            print(f"stopped: {stopped.get('status') or stopped.get('message')}", flush=True)
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watching
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=None)
    sys.exit(asyncio.run(main(parser.parse_args().seconds)))
