"""What an exchange says of an order, read into coinql's states and fills: ccxt's statuses,
partial fills, fees in the quote, the base or a third currency, and fills derived from the
order's running totals that add up to them however often the order is read."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coinql.domain.executions import OrderState, next_fill, read_order


@pytest.mark.parametrize(
    ("status", "filled", "state"),
    [
        ("open", 0, OrderState.NEW),
        ("open", 0.5, OrderState.PARTIALLY_FILLED),
        (None, 0, OrderState.NEW),  # create_order often answers with the id alone
        ("closed", 1, OrderState.FILLED),
        ("canceled", 0.5, OrderState.CANCELLED),
        ("expired", 0, OrderState.EXPIRED),
        ("rejected", 0, OrderState.REJECTED),
    ],
)
def test_ccxt_statuses_map_to_coinqls(status: str | None, filled: float, state: OrderState) -> None:
    raw = {"id": 7, "status": status, "filled": filled, "average": 100 if filled else None}
    assert read_order(raw, base="BTC", quote="USDT").state is state


def test_fees_are_kept_in_the_quote() -> None:
    raw = {
        "id": "1",
        "clientOrderId": "cq-1",
        "status": "closed",
        "filled": 2,
        "average": 100,
        "fees": [
            {"cost": 0.2, "currency": "USDT"},
            {"cost": 0.001, "currency": "BTC"},  # valued at the average price
            {"cost": 0.05, "currency": "BNB"},  # cannot be valued here
        ],
    }
    order = read_order(raw, base="BTC", quote="USDT")
    assert order.fee == Decimal("0.2") + Decimal("0.001") * 100
    assert order.unpriced_fee and order.client_order_id == "cq-1" and order.id == "1"


def test_an_average_missing_is_taken_from_the_cost() -> None:
    order = read_order({"id": "1", "filled": 4, "cost": 200}, base="BTC", quote="USDT")
    assert order.average == Decimal(50) and order.state is OrderState.PARTIALLY_FILLED


@given(
    st.lists(
        st.tuples(
            st.decimals(min_value="0.001", max_value="10", places=3),
            st.decimals(min_value="1", max_value="1000", places=2),
        ),
        min_size=1,
        max_size=6,
    ),
    st.integers(min_value=1, max_value=3),
)
def test_fills_derived_from_running_totals_add_up_to_them(
    executions: list[tuple[Decimal, Decimal]], reads: int
) -> None:
    """Each execution reported by the order's totals (read `reads` times each, as polling
    and a stream both might) is recorded once, at the price that keeps the average."""
    recorded: list[tuple[Decimal, Decimal, Decimal]] = []
    filled = cost = fees = Decimal(0)
    for amount, price in executions:
        filled += amount
        cost += amount * price
        fees += amount * price / 1000
        raw = {"id": "9", "status": "open", "filled": str(filled), "average": str(cost / filled)}
        raw["fee"] = {"cost": str(fees), "currency": "USDT"}
        for _ in range(reads):
            fill = next_fill(read_order(raw, base="BTC", quote="USDT"), recorded)
            if fill is not None:
                recorded.append((fill.quantity, fill.price, fill.fee))
    assert len(recorded) == len(executions)
    assert sum(q for q, _, _ in recorded) == filled
    assert sum(q * p for q, p, _ in recorded) == pytest.approx(cost, rel=Decimal("1e-20"))
    assert sum(f for _, _, f in recorded) == pytest.approx(fees, rel=Decimal("1e-20"))
    for (quantity, price, _), (amount, real) in zip(recorded, executions, strict=True):
        assert quantity == amount and price == pytest.approx(real, rel=Decimal("1e-20"))


def test_nothing_new_or_no_price_yet_is_no_fill() -> None:
    order = read_order({"id": "1", "status": "open", "filled": 0}, base="BTC", quote="USDT")
    assert next_fill(order, []) is None
    done = read_order(
        {"id": "1", "status": "closed", "filled": 1, "average": 5}, base="B", quote="Q"
    )
    assert next_fill(done, [(Decimal(1), Decimal(5), Decimal(0))]) is None
