"""Orders rounded as ccxt rounds them (its own decimal_to_precision is the oracle, in each
precision mode) and refused, naming the field, where the market's limits or the balance say."""

from __future__ import annotations

from decimal import Decimal

import pytest
from ccxt.base.decimal_to_precision import (
    NO_PADDING,
    ROUND,
    TICK_SIZE,
    TRUNCATE,
    decimal_to_precision,
)
from hypothesis import given
from hypothesis import strategies as st

from coinql.domain.errors import InvalidInput
from coinql.domain.orders import (
    AboveMaximum,
    BelowMinimum,
    InsufficientBalance,
    InvalidPrice,
    MarketRules,
    OrderKind,
    PrecisionMode,
    prepare_order,
)

# A ccxt unified market (binance's BTC/USDT shape, TICK_SIZE precision).
BTC_USDT = {
    "symbol": "BTC/USDT",
    "precision": {"amount": 0.00001, "price": 0.01},
    "limits": {
        "amount": {"min": 0.00001, "max": 9000.0},
        "price": {"min": 0.01, "max": 1000000.0},
        "cost": {"min": 5.0, "max": None},
    },
}
RULES = MarketRules.from_ccxt(BTC_USDT, TICK_SIZE)
VALUES = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(100000), places=9)
MODES = {
    PrecisionMode.TICK_SIZE: st.sampled_from(["0.001", "0.05", "0.00001", "1", "10", "0.25"]),
    PrecisionMode.DECIMAL_PLACES: st.sampled_from(["0", "1", "2", "5", "8"]),
    PrecisionMode.SIGNIFICANT_DIGITS: st.sampled_from(["1", "2", "3", "5", "8"]),
}


@pytest.mark.parametrize("mode", list(MODES), ids=lambda mode: mode.name)
@given(data=st.data(), value=VALUES)
def test_amounts_truncate_and_prices_round_as_ccxt_does(
    mode: PrecisionMode, data: st.DataObject, value: Decimal
) -> None:
    precision = data.draw(MODES[mode])
    rules = MarketRules(Decimal(precision), Decimal(precision), mode)
    oracle = {TRUNCATE: rules.amount(value), ROUND: rules.price(value)}
    for rounding, found in oracle.items():
        expected = decimal_to_precision(
            str(value),
            rounding,
            precision if mode is PrecisionMode.TICK_SIZE else int(precision),
            int(mode),
            NO_PADDING,
        )
        assert found == Decimal(expected), (rounding, precision, value)


def ready(**fields: object) -> object:
    values: dict[str, object] = {
        "side": "buy",
        "kind": OrderKind.MARKET,
        "quantity": Decimal("0.01"),
        "price": None,
        "expected_price": Decimal(60000),
        "free_quote": Decimal(10000),
        "free_base": Decimal(0),
        **fields,
    }
    return prepare_order(RULES, **values)  # type: ignore[arg-type]


def test_an_order_is_rounded_to_the_market() -> None:
    order = ready(kind=OrderKind.LIMIT, quantity=Decimal("0.0123456"), price=Decimal("59999.987"))
    assert (order.quantity, order.price) == (Decimal("0.01234"), Decimal("59999.99"))  # type: ignore[attr-defined]
    assert order.cost == Decimal("0.01234") * Decimal("59999.99")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("fields", "error", "field"),
    [
        ({"quantity": Decimal("0.000001")}, BelowMinimum, "quantity"),  # below one step
        ({"quantity": Decimal("0.00005")}, BelowMinimum, "quantity"),  # worth 3 USDT < 5
        ({"quantity": Decimal(9001), "free_quote": Decimal(10**12)}, AboveMaximum, "quantity"),
        ({"quantity": Decimal(1)}, InsufficientBalance, "quantity"),
        ({"side": "sell", "free_base": Decimal("0.001")}, InsufficientBalance, "quantity"),
        ({"price": Decimal(1)}, InvalidPrice, "price"),  # a market order takes no price
        ({"kind": OrderKind.LIMIT}, InvalidPrice, "price"),
        ({"kind": OrderKind.STOP_MARKET, "price": Decimal(-1)}, InvalidPrice, "price"),
        ({"kind": OrderKind.LIMIT, "price": Decimal("0.001")}, InvalidPrice, "price"),
        ({"kind": OrderKind.LIMIT, "price": Decimal(2000000)}, AboveMaximum, "price"),
        ({"quantity": Decimal(0)}, InvalidInput, "quantity"),
        ({"side": "short"}, InvalidInput, "side"),
    ],
)
def test_each_refusal_is_typed_and_names_its_field(
    fields: dict[str, object], error: type[InvalidInput], field: str
) -> None:
    with pytest.raises(error) as refused:
        ready(**fields)
    assert refused.value.field == field


def test_a_buy_reserves_its_fee() -> None:
    assert ready(quantity=Decimal("0.1"), free_quote=Decimal(6006)).cost == Decimal(6000)  # type: ignore[attr-defined]
    with pytest.raises(InsufficientBalance):
        ready(quantity=Decimal("0.1"), free_quote=Decimal(6005), fee_rate=Decimal("0.001"))


def test_a_market_without_rules_takes_the_order_as_given() -> None:
    order = prepare_order(
        MarketRules(),
        side="sell",
        kind=OrderKind.MARKET,
        quantity=Decimal("0.123456789"),
        price=None,
        expected_price=Decimal(1),
        free_quote=Decimal(0),
        free_base=Decimal(1),
    )
    assert order.quantity == Decimal("0.123456789")
