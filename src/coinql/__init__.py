"""coinql: a GraphQL API for crypto portfolio analytics, risk and backtesting."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("coinql")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
