"""Strategies: the user-facing API (`api`), the runner process (`runner`) and two examples (`examples`)."""

from hean.strategy.api import Context, Fill, OrderEvent, OrderIntent, Position, RiskView, Strategy, Tick

__all__ = ["Context", "Fill", "OrderEvent", "OrderIntent", "Position", "RiskView", "Strategy", "Tick"]
