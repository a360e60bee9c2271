"""Risk: the ex-ante risk report of a weighted basket, and principal components."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from coinql.domain import risk
from coinql.domain.basket import Basket, stress_scenarios
from coinql.domain.bounds import Bounds
from coinql.domain.covariance import EWMA_DEFAULT_DECAY, correlation_from
from coinql.resolvers import risk as risk_resolvers
from coinql.resolvers.context import Context
from coinql.schema.bounds import CONFIDENCE, EWMA_DECAY, bounded_argument
from coinql.schema.enums import CovarianceMethod, Interval, VarMethod
from coinql.schema.scalars import FloatArray, finite, from_millis, to_millis

DEFAULT_LEVEL = 0.95
# A basket's weights: fractions of its value, short (negative) or levered up to 10x.
BASKET_WEIGHT = Bounds(-10, 10)
Level = Annotated[
    float, bounded_argument(CONFIDENCE, description="A confidence such as 0.95 or 0.99.")
]


@strawberry.type
class RiskContribution:
    symbol: str
    weight: float
    marginal_risk: float | None = strawberry.field(description="d volatility / d weight.")
    risk_contribution: float | None = strawberry.field(description="Sums to volatility.")


@strawberry.type
class CorrelationMatrix:
    symbols: list[str]
    matrix: list[FloatArray] = strawberry.field(description="One row per symbol.")


@strawberry.type
class StressScenario:
    scenario: str
    portfolio_return: float | None
    start: datetime | None
    end: datetime | None


@strawberry.type(description="Ex-ante risk of a weighted basket. Volatility is annualised.")
class RiskReport:
    symbols: list[str]
    weights: list[float]
    covariance_method: CovarianceMethod
    observations: int
    basket: strawberry.Private[Basket]
    cov: strawberry.Private[Any]
    found: strawberry.Private[risk.BasketRisk]

    @strawberry.field
    def volatility(self) -> float | None:
        return finite(self.found.volatility)

    @strawberry.field(description="Historical or parametric, on the basket's past returns.")
    def value_at_risk(
        self, level: Level = DEFAULT_LEVEL, method: VarMethod = VarMethod.HISTORICAL
    ) -> float | None:
        return finite(risk.value_at_risk(self.basket.basket_returns, level, method))

    @strawberry.field
    def expected_shortfall(
        self, level: Level = DEFAULT_LEVEL, method: VarMethod = VarMethod.HISTORICAL
    ) -> float | None:
        return finite(risk.expected_shortfall(self.basket.basket_returns, level, method))

    @strawberry.field(description="Weighted sum of volatilities / basket volatility.")
    def diversification_ratio(self) -> float | None:
        return finite(self.found.diversification_ratio)

    @strawberry.field
    def contributions(self) -> list[RiskContribution]:
        return [
            RiskContribution(
                symbol=symbol,
                weight=float(weight),
                marginal_risk=finite(marginal),
                risk_contribution=finite(contribution),
            )
            for symbol, weight, marginal, contribution in zip(
                self.basket.symbols,
                self.basket.weights,
                self.found.marginal,
                self.found.contributions,
                strict=True,
            )
        ]

    @strawberry.field
    def correlation(self) -> CorrelationMatrix:
        matrix = correlation_from(self.cov)
        return CorrelationMatrix(symbols=self.basket.symbols, matrix=list(matrix))

    @strawberry.field(description="Historical windows replayed on the weights, and shocks.")
    def stress(self) -> list[StressScenario]:
        return [
            StressScenario(
                scenario=found.name,
                portfolio_return=finite(found.basket_return),
                start=from_millis(found.start),
                end=from_millis(found.end),
            )
            for found in stress_scenarios(self.basket)
        ]


@strawberry.type
class Loadings:
    symbol: str
    values: FloatArray = strawberry.field(description="One loading per component.")


@strawberry.type(description="Principal components of the returns' covariance.")
class PrincipalComponents:
    symbols: list[str]
    explained_variance_ratio: FloatArray
    loadings: list[Loadings] = strawberry.field(description="Per symbol, sign-normalised.")


@strawberry.type
class RiskQuery:
    @strawberry.field(description="Ex-ante risk of a weighted basket of assets.")
    async def risk_report(
        self,
        info: Info[Context, None],
        symbols: list[str],
        weights: Annotated[
            list[float] | None,
            bounded_argument(BASKET_WEIGHT, description="One per symbol; equal if omitted."),
        ] = None,
        interval: Interval = Interval.D1,
        start: datetime | None = None,
        end: datetime | None = None,
        covariance: CovarianceMethod = CovarianceMethod.SAMPLE,
        ewma_decay: Annotated[float, bounded_argument(EWMA_DECAY)] = EWMA_DEFAULT_DECAY,
    ) -> RiskReport | None:
        basket = await risk_resolvers.load_basket(
            info.context,
            symbols=symbols,
            weights=weights,
            interval=interval,
            start=to_millis(start),
            end=to_millis(end),
        )
        cov = await risk_resolvers.basket_covariance(basket, covariance, ewma_decay)
        return RiskReport(
            symbols=basket.symbols,
            weights=[float(weight) for weight in basket.weights],
            covariance_method=covariance,
            observations=int(basket.returns.shape[0]),
            basket=basket,
            cov=cov,
            found=risk.basket_risk(basket.weights, cov, basket.periods_per_year),
        )

    @strawberry.field(description="Principal components of several assets' returns.")
    async def pca(
        self,
        info: Info[Context, None],
        symbols: list[str],
        interval: Interval = Interval.D1,
        start: datetime | None = None,
        end: datetime | None = None,
        components: Annotated[int, bounded_argument(Bounds(1, risk_resolvers.MAX_COMPONENTS))] = 3,
    ) -> PrincipalComponents | None:
        basket = await risk_resolvers.load_basket(
            info.context,
            symbols=symbols,
            weights=None,
            interval=interval,
            start=to_millis(start),
            end=to_millis(end),
        )
        found = await risk_resolvers.principal_components(basket, components)
        return PrincipalComponents(
            symbols=basket.symbols,
            explained_variance_ratio=found.explained_variance_ratio,
            loadings=[
                Loadings(symbol=symbol, values=found.loadings[:, column])
                for column, symbol in enumerate(basket.symbols)
            ],
        )
