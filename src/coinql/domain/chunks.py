"""Research jobs cut into chunks that any worker runs, and the chunks' results merged.

A sweep is cut by combinations, a walk-forward by windows, a Monte Carlo run by blocks of
paths. Each piece of a run depends on its own inputs alone (a combination's backtest, a
window's optimisation, a block's random stream: see `coinql.domain.simulation.block_rng`),
so the chunks' results, merged in order, are the whole run's, bit for bit, wherever and in
whichever order the chunks ran.
"""

from __future__ import annotations

from coinql.domain.research import SweepResult, WalkForwardResult, best_row
from coinql.domain.runs import ChunkJob
from coinql.domain.simulation import BAND_PATHS, CHUNK_PATHS

MAX_CHUNKS = 16
SWEEP_COMBINATIONS = 25  # at least this many combinations per chunk of a sweep


def even(total: int, parts: int, *, unit: int = 1) -> list[ChunkJob]:
    """Cut `total` items into `parts` contiguous chunks of nearly equal size.

    Parameters
    ----------
    total : int
        The number of items, at least 1.
    parts : int
        The number of chunks wanted; fewer when there are fewer units than that.
    unit : int, default 1
        Chunks start at multiples of `unit` (the last one ends at `total`).

    Returns
    -------
    list of ChunkJob
        In order, covering [0, total) once; the first chunks are the larger.

    Raises
    ------
    ValueError
        When `total` or `parts` is below 1.
    """
    if total < 1 or parts < 1:
        raise ValueError("a run needs at least one item and one chunk")
    units = -(-total // unit)
    parts = min(parts, units)
    size, extra = divmod(units, parts)
    chunks, start = [], 0
    for index in range(parts):
        stop = min(total, start + (size + (index < extra)) * unit)
        chunks.append(ChunkJob(index, parts, start, stop))
        start = stop
    return chunks


def sweep_chunks(combinations: int, max_chunks: int = MAX_CHUNKS) -> list[ChunkJob]:
    """Cut a sweep's combinations into chunks of at least `SWEEP_COMBINATIONS`.

    Parameters
    ----------
    combinations : int
        The sweep's valid combinations, at least 1.
    max_chunks : int, default MAX_CHUNKS

    Returns
    -------
    list of ChunkJob
        Ranges of the combinations' indexes.
    """
    return even(combinations, min(max_chunks, max(1, combinations // SWEEP_COMBINATIONS)))


def walk_forward_chunks(windows: int, max_chunks: int = MAX_CHUNKS) -> list[ChunkJob]:
    """Cut a walk-forward's windows into chunks of one window or more.

    Parameters
    ----------
    windows : int
        The number of train/test windows, at least 1.
    max_chunks : int, default MAX_CHUNKS

    Returns
    -------
    list of ChunkJob
        Ranges of the windows' indexes.
    """
    return even(windows, max_chunks)


def simulation_chunks(paths: int, max_chunks: int = MAX_CHUNKS) -> list[ChunkJob]:
    """Cut a Monte Carlo run's paths into chunks of whole blocks of `CHUNK_PATHS`.

    The first chunk holds the first `BAND_PATHS` paths, from which the bands are drawn.

    Parameters
    ----------
    paths : int
        The run's paths, at least 1.
    max_chunks : int, default MAX_CHUNKS

    Returns
    -------
    list of ChunkJob
        Ranges of the paths, each at least as long as the bands' paths (but the last).
    """
    band_blocks = -(-min(BAND_PATHS, paths) // CHUNK_PATHS)
    blocks = -(-paths // CHUNK_PATHS)
    return even(paths, min(max_chunks, max(1, blocks // band_blocks)), unit=CHUNK_PATHS)


def merge_sweep(parts: list[SweepResult]) -> SweepResult:
    """Merge the chunks of a sweep, in their order, into the sweep's result.

    Parameters
    ----------
    parts : list of SweepResult
        Each chunk's rows (`coinql.domain.research.sweep` with `part`), at least one.

    Returns
    -------
    SweepResult
        Every row in order, and the best of them all (ties to the first, as in one run).
    """
    rows = [row for part in parts for row in part.rows]
    metric = parts[0].metric
    return SweepResult(metric, rows, best_row(rows, metric))


def merge_walk_forward(parts: list[WalkForwardResult]) -> WalkForwardResult:
    """Merge the chunks of a walk-forward, in their order, into its result.

    Parameters
    ----------
    parts : list of WalkForwardResult
        Each chunk's windows (`coinql.domain.research.walk_forward` with `part`), at least
        one.

    Returns
    -------
    WalkForwardResult
        Every window in order.
    """
    return WalkForwardResult(parts[0].metric, [split for part in parts for split in part.splits])
