"""Strategy expressions: spelled like a built-in they signal and backtest as it does, on every
real coin; no expression looks ahead (a property test over random expressions); bad text is
refused with the column of its cause; undefined values never become signals."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coinql.domain import backtest as bt
from coinql.domain import backtest_config as bc
from coinql.domain import indicators as ind
from coinql.domain.candles import Candles
from coinql.domain.expression_functions import FUNCTIONS
from coinql.domain.expression_syntax import Call, ExpressionError, parameters, parse
from coinql.domain.expressions import compile_signals
from coinql.domain.signals import crossed_above, lookback, signals
from coinql.domain.strategies import StrategySpec
from tests.domain.coins import NAMES, parsed

BUILT_INS = [
    (
        StrategySpec("smaCross", {"fast": 10, "slow": 30}),
        "crossover(sma(close, $1), sma(close, $2))",
        "crossunder(sma(close, $1), sma(close, $2))",
        {1: 10, 2: 30},
    ),
    (
        StrategySpec("emaCross", {"fast": 12, "slow": 26}),
        "crossover(ema(close, 12), ema(close, 26))",
        "crossunder(ema(close, 12), ema(close, 26))",
        {},
    ),
    (
        StrategySpec("rsiReversion", {"window": 14, "lower": 30.0, "upper": 70.0}),
        "crossunder(rsi(close, $1), $2)",
        "crossover(rsi(close, $1), $3)",
        {1: 14, 2: 30, 3: 70},
    ),
    (
        StrategySpec("donchianBreakout", {"entry": 20, "exit": 10}),
        "close > donchian_upper(20)",
        "close < donchian_lower(10)",
        {},
    ),
    (
        StrategySpec("momentum", {"lookback": 7, "threshold": 0.05}),
        "crossover(close / lag(close, 7) - 1, 0.05)",
        "crossunder(close / lag(close, 7) - 1, 0.05)",
        {},
    ),
]


@pytest.mark.parametrize("symbol", sorted(NAMES))
@pytest.mark.parametrize(
    ("spec", "entry", "exit_", "values"), BUILT_INS, ids=[spec.kind for spec, *_ in BUILT_INS]
)
def test_an_expression_spelling_a_built_in_signals_and_backtests_as_it_does(
    symbol: str, spec: StrategySpec, entry: str, exit_: str, values: dict[int, float]
) -> None:
    candles = parsed(symbol).candles
    compiled = compile_signals(entry, exit_, values)
    enter, leave = compiled.signals(candles)
    built_enter, built_leave = signals(spec, candles)
    assert enter.any() and leave.any()
    np.testing.assert_array_equal(enter, built_enter)
    np.testing.assert_array_equal(leave, built_leave)
    # Never later than the built-in's (whose Donchian lookback counts a bar more than needed).
    assert compiled.lookback in (lookback(spec), lookback(spec) - 1)
    config = bc.BacktestConfig(fee_bps=10, slippage_bps=5)
    ours = bt.simulate(candles, enter, leave, config)
    theirs = bt.simulate(candles, built_enter, built_leave, config)
    np.testing.assert_array_equal(ours.equity, theirs.equity)
    assert [trade.entry_bar for trade in ours.trades] == [t.entry_bar for t in theirs.trades]


def test_arithmetic_comparisons_and_logic_on_every_bar() -> None:
    candles = parsed("ETH").candles
    close, high, low = candles.close, candles.high, candles.low
    compiled = compile_signals(
        "(high - low) / close > 0.1 and not close < open or -close * 2 >= -2 * 3000",
        "close != close",  # never: a price equals itself
        {},
    )
    enter, leave = compiled.signals(candles)
    wide = (high - low) / close > 0.1
    expected = (wide & ~(close < candles.open)) | (-close * 2 >= -6000)
    np.testing.assert_array_equal(enter, expected)
    assert not leave.any()


def test_an_undefined_value_is_never_a_signal() -> None:
    candles = parsed("BTC").candles.select(np.arange(60))
    # A window longer than the series: the average is undefined on every bar.
    compiled = compile_signals("close > sma(close, 100)", "close / 0 < 1", {})
    enter, leave = compiled.signals(candles)
    assert not enter.any() and not leave.any()
    # Before its lookback, not even `not` of an undefined comparison fires.
    negated = compile_signals("not close < sma(close, 50) - 1000000", "close < 0", {})
    assert negated.entry.lookback == 49
    enter, _ = negated.signals(candles)
    assert not enter[:49].any() and enter[49:].any()


def test_an_indicator_of_an_indicator_starts_where_its_argument_does() -> None:
    """An average of RSI, or of a difference with a lag: the recursive averages would carry the
    argument's warm-up NaN forward for good; each starts where its argument is defined."""
    candles = parsed("BTC").candles.select(np.arange(500))
    close = candles.close
    rsi = ind.rsi(close, 14)
    smoothed = np.full(close.size, np.nan)
    smoothed[14:] = ind.ema(rsi[14:], 5)
    compiled = compile_signals("crossover(ema(rsi(close, 14), 5), 50)", "close < 0", {})
    enter, _ = compiled.signals(candles)
    expected = crossed_above(smoothed, np.full(close.size, 50.0))
    assert expected.any()
    np.testing.assert_array_equal(enter, expected)
    momentum = compile_signals("crossover(ema(close - lag(close, 1), 10), 0)", "close < 0", {})
    assert momentum.signals(candles)[0].any()


def test_a_comparison_with_an_undefined_side_is_false_for_every_operator() -> None:
    flat = Candles.from_columns(
        np.arange(20) * 86_400_000, *[np.full(20, 100.0)] * 4, np.ones(20), np.full(20, np.nan)
    )
    for op in ("<", "<=", ">", ">=", "==", "!="):
        compiled = compile_signals(f"zscore(close, 5) {op} 0", f"close / 0 {op} 1", {})
        enter, leave = compiled.signals(flat)  # a flat series has no z-score
        assert not enter.any() and not leave.any(), op
    shifted = compile_signals("lag(close, 600) > 0", "close < 0", {})  # longer than the series
    assert not shifted.signals(flat)[0].any()


def test_numbered_parameters_bind_from_the_values_and_are_listed() -> None:
    tree = parse("crossover(sma(close, $1), sma(close, $2 * 2)) and rsi(close, 14) < $3")
    assert parameters(tree) == {1, 2, 3}
    candles = parsed("BTC").candles
    one = compile_signals(
        "crossover(sma(close, $1), sma(close, $2 * 2))", "close < 0", {1: 5, 2: 10}
    )
    two = compile_signals("crossover(sma(close, 5), sma(close, 20))", "close < 0", {})
    np.testing.assert_array_equal(one.signals(candles)[0], two.signals(candles)[0])


@pytest.mark.parametrize(
    ("entry", "column", "says"),
    [
        ("sma(close 10) > 1", 11, "expected ',' or ')', found '10'"),
        ("smaa(close, 10) > 1", 1, "did you mean sma?"),
        ("close >", 8, "found the end"),
        ("close > 1 and", 14, "found the end"),
        ("sma(close, 2.5) > 1", 12, "whole number of bars"),
        ("sma(close, close) > 1", 12, "window is a number, not a series"),
        ("sma(close, 10)", 1, "gives a series, not a condition"),
        ("close > 1 and close", 15, "'and' needs a condition"),
        ("crossover(close > 1, close)", 11, "needs a series here"),
        ("bbands(close, 20) > close", 1, "bbands_upper, bbands_middle or bbands_lower"),
        ("rsi(close) > 30", 1, "rsi takes 2 arguments, not 1"),
        ("bbands_upper(close, 20, 2, 3) > close", 1, "takes 2 to 3 arguments"),
        ("$0 > close", 1, "numbered from $1"),
        ("close > $3", 9, "$3 has no value"),
        ("close # 2", 7, "unexpected '#'"),
        ("(close > 1", 11, "expected ')'"),
        ("price > 1", 1, "unknown name 'price'"),
        ("sma > 1", 1, "needs its arguments"),
        ("   ", 1, "empty"),
        ("(" * 50 + "close" + ")" * 50 + " > 1", 41, "nested more than 40 deep"),
        ("__import__(1) > 1", 1, "unknown function '__import__'"),
        ("-" * 1990 + "close > 0", 40, "nested more than 40 deep"),  # no recursion error
        ("close > " + "-".join(["1"] * 990), 1911, "nested more than 40 deep"),
        ("sma(close, 5000) > 1", 12, "a window is a whole number of bars up to 1000"),
        ("bbands_upper(close, 10, 1e999) > close", 25, "must be a finite number"),
        ("bbands_upper(close, 10, 0 / 0) > close", 25, "must be a finite number"),
        ("eval('x') > 1", 6, 'unexpected "\'"'),
    ],
)
def test_bad_text_is_refused_with_the_column_of_its_cause(
    entry: str, column: int, says: str
) -> None:
    with pytest.raises(ExpressionError) as refused:
        compile_signals(entry, "close < 0", {1: 2}, "kind.expression")
    assert refused.value.field == "kind.expression.entry"
    assert refused.value.column == column, refused.value.message
    assert says in refused.value.message
    assert refused.value.message.startswith(f"kind.expression.entry, column {column}: ")


def test_the_exit_is_named_when_it_is_the_bad_one() -> None:
    with pytest.raises(ExpressionError) as refused:
        compile_signals("close > 1", "close <", {})
    assert refused.value.field == "expression.exit" and refused.value.column == 8


# Random expressions from the grammar, for the look-ahead property.
WINDOWS = st.integers(min_value=1, max_value=30).map(str)


def _series(depth: int) -> st.SearchStrategy[str]:
    prices = st.sampled_from(["open", "high", "low", "close", "volume"])
    numbers = st.floats(min_value=-100, max_value=100, allow_nan=False).map(lambda x: f"{x:.3f}")
    leaves = prices | numbers | st.builds("atr({})".format, WINDOWS)
    leaves |= st.builds("vwap({})".format, WINDOWS) | st.builds(
        "donchian_upper({})".format, WINDOWS
    )
    if depth == 0:
        return leaves
    inner = _series(depth - 1)
    one = st.sampled_from(["sma", "ema", "rsi", "zscore", "realized_vol", "lag", "bbands_lower"])
    return (
        leaves
        | st.builds("{}({}, {})".format, one, inner, WINDOWS)
        | st.builds("({} {} {})".format, inner, st.sampled_from("+-*/"), inner)
        | st.builds("-{}".format, inner)
    )


def _condition(depth: int) -> st.SearchStrategy[str]:
    series = _series(2)
    compare = st.sampled_from(["<", "<=", ">", ">=", "==", "!="])
    leaves = st.builds("{} {} {}".format, series, compare, series) | st.builds(
        "{}({}, {})".format, st.sampled_from(["crossover", "crossunder"]), series, series
    )
    if depth == 0:
        return leaves
    inner = _condition(depth - 1)
    return (
        leaves
        | st.builds("not ({})".format, inner)
        | st.builds("({}) {} ({})".format, inner, st.sampled_from(["and", "or"]), inner)
    )


def _changed_after(candles: Candles, bar: int, factor: np.ndarray) -> Candles:
    """The candles with every bar after `bar` scaled by `factor` (prices and volumes)."""
    scale = np.ones(len(candles))
    scale[bar + 1 :] = factor[bar + 1 :]
    return Candles.from_columns(
        candles.timestamps,
        candles.open * scale,
        candles.high * scale,
        candles.low * scale,
        candles.close * scale,
        candles.volume * scale[::-1],
        candles.quote_volume,
    )


@settings(max_examples=150, deadline=None)
@given(
    entry=_condition(2),
    exit_=_condition(1),
    bar=st.integers(min_value=0, max_value=198),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_changing_later_bars_never_changes_an_earlier_signal(
    entry: str, exit_: str, bar: int, seed: int
) -> None:
    candles = parsed("DOGE").candles.select(np.arange(200))
    compiled = compile_signals(entry, exit_, {})
    factor = np.random.default_rng(seed).uniform(0.5, 2.0, len(candles))
    before = compiled.signals(candles)
    after = compiled.signals(_changed_after(candles, bar, factor))
    for original, changed in zip(before, after, strict=True):
        np.testing.assert_array_equal(original[: bar + 1], changed[: bar + 1])


def test_every_function_is_in_the_look_ahead_property() -> None:
    """The generators above reach every function but the Bollinger middle and upper lines and
    the Donchian lower one, which share the code of those they do reach."""
    reached = {"sma", "ema", "rsi", "zscore", "realized_vol", "lag", "bbands_lower", "atr"}
    reached |= {"vwap", "donchian_upper", "crossover", "crossunder"}
    shared = {"bbands_middle": "sma", "bbands_upper": "bbands_lower"}
    shared["donchian_lower"] = "donchian_upper"
    assert set(FUNCTIONS) == reached | set(shared)


def test_a_memo_shared_by_evaluations_gives_each_its_own_signals() -> None:
    """A sweep's combinations share the subexpressions they repeat, and each still gets what
    it would alone: masking one condition's warm-up never touches the shared values."""
    candles = parsed("LTC").candles
    memo: dict[Any, Any] = {}
    shared = [
        compile_signals(
            "crossover(sma(close, 5), sma(close, $1))",
            "crossunder(sma(close, 5), sma(close, $1))",
            {1: slow},
        )
        for slow in (20, 40, 20)
    ]
    together = [compiled.signals(candles, memo) for compiled in shared]
    alone = [compiled.signals(candles) for compiled in shared]
    for (enter, leave), (enter_alone, leave_alone) in zip(together, alone, strict=True):
        np.testing.assert_array_equal(enter, enter_alone)
        np.testing.assert_array_equal(leave, leave_alone)
    assert sum(isinstance(node, Call) and node.name == "sma" for node in memo) == 3
