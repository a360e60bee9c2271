"""Submit a parameter sweep of an SMA crossover on BTC and follow its progress to the end over
`jobProgress`, then print the best parameters.

    COINQL_API_KEY=cq_... python examples/sweep.py
"""

from __future__ import annotations

import asyncio
import sys

from _client import http_client, socket_client
from gql import gql

SWEEP = gql("""
mutation Sweep {
  runSweep(input: {
    symbol: "BTC", strategy: "smaCross", metric: "sharpe", feeBps: 10,
    grid: [{name: "fast", values: [5, 10, 20]}, {name: "slow", values: [30, 50, 100]}]
  }) {
    __typename
    ... on Job { id }
    ... on Error { message }
  }
}
""")
PROGRESS = gql("""
subscription Progress($jobId: ID!) {
  jobProgress(jobId: $jobId) { status progress stage }
}
""")
RESULT = gql("""
query Result($jobId: ID!) {
  job(id: $jobId) {
    status error
    result {
      ... on SweepRun { metric rows { params } best { params metrics { sharpe totalReturn } } }
    }
  }
}
""")


async def main() -> int:
    async with http_client() as http:
        submitted = (await http.execute(SWEEP))["runSweep"]
        if submitted["__typename"] != "Job":
            print(f"refused: {submitted['message']}", file=sys.stderr)
            return 1
        job_id = submitted["id"]
        print(f"job {job_id}")
        async with socket_client() as socket:
            async for update in socket.subscribe(PROGRESS, variable_values={"jobId": job_id}):
                progress = update["jobProgress"]
                print(
                    f"{progress['status']:>10} {progress['progress']:6.1%} {progress['stage']}",
                    flush=True,
                )
        job = (await http.execute(RESULT, variable_values={"jobId": job_id}))["job"]
    if job["status"] != "SUCCEEDED":
        print(f"the sweep ended {job['status']}: {job['error']}", file=sys.stderr)
        return 1
    result = job["result"]
    best = result["best"]
    print(f"{len(result['rows'])} combinations; best by {result['metric']}: {best['params']}")
    print(
        f"sharpe {best['metrics']['sharpe']:.2f}, total return {best['metrics']['totalReturn']:.1%}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
