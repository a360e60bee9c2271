"""Clients of the outside markets: exchanges through ccxt (`coinql.exchanges.ccxt`) and market
caps from CoinGecko (`coinql.exchanges.coingecko`)."""
