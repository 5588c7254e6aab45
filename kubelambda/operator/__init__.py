"""The kopf operator: handlers and the pure reconcile logic behind them."""
