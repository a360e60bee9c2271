"""Demo generator parameters, fitted by scripts/fit_demo_params.py. Do not edit."""

from typing import Any

DEMO_PARAMS: dict[str, Any] = {
    "source": "fitted to ../shared/data/coins-daily (1374 common days to 2021-07-06) by "
    "scripts/fit_demo_params.py",
    "assets": [
        {
            "symbol": "BTC",
            "name": "Bitcoin",
            "drift": 0.001493,
            "volatility": [0.027146, 0.053685],
            "tail_index": 2.984,
            "price": 34235.19345,
            "supply": 18749682.0,
            "quote_volume": 43414712626.0,
        },
        {
            "symbol": "ETH",
            "name": "Ethereum",
            "drift": 0.001497,
            "volatility": [0.042142, 0.062754],
            "tail_index": 3.084,
            "price": 2324.679449,
            "supply": 116587687.0,
            "quote_volume": 21249297710.0,
        },
        {
            "symbol": "BNB",
            "name": "Binance Coin",
            "drift": 0.003712,
            "volatility": [0.045238, 0.080541],
            "tail_index": 2.808,
            "price": 320.93480178,
            "supply": 153432897.0,
            "quote_volume": 621983627.0,
        },
        {
            "symbol": "ADA",
            "name": "Cardano",
            "drift": 0.002914,
            "volatility": [0.050198, 0.092812],
            "tail_index": 3.108,
            "price": 1.41805266,
            "supply": 31946328173.0,
            "quote_volume": 2028094099.0,
        },
        {
            "symbol": "DOGE",
            "name": "Dogecoin",
            "drift": 0.003915,
            "volatility": [0.063651, 0.102598],
            "tail_index": 2.5,
            "price": 0.23442176,
            "supply": 130331409610.0,
            "quote_volume": 240079033.0,
        },
        {
            "symbol": "LTC",
            "name": "Litecoin",
            "drift": 0.000697,
            "volatility": [0.044491, 0.069332],
            "tail_index": 3.112,
            "price": 138.985636,
            "supply": 66752415.0,
            "quote_volume": 3701855843.0,
        },
    ],
    "regime_transitions": [[0.965066, 0.034934], [0.033577, 0.966423]],
    "correlation": [
        [1.0, 0.756122, 0.629344, 0.574632, 0.448882, 0.741389],
        [0.756122, 1.0, 0.629254, 0.656223, 0.423669, 0.816693],
        [0.629344, 0.629254, 1.0, 0.505395, 0.340535, 0.608757],
        [0.574632, 0.656223, 0.505395, 1.0, 0.403891, 0.606699],
        [0.448882, 0.423669, 0.340535, 0.403891, 1.0, 0.455322],
        [0.741389, 0.816693, 0.608757, 0.606699, 0.455322, 1.0],
    ],
}
