"""The `ecomlab` command line, a module per command group (`app` holds what they share).

Importing the package registers every command on `app`, the console script's entry point. `app` is
imported first: it sets the telemetry and plotting environment before any library is imported.
"""

from training.cli.app import app  # isort: skip
from training.cli import data, kpis, train, models, rules, runs, serve, quickstart, score, drift  # noqa: F401, E402  (registers the commands)

__all__ = ["app"]
