"""`ecomlab serve`: start the BentoML model service with the given settings."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from training.cli.app import app, shipped_config, user_errors


@app.command("serve")
def serve(
    config: Annotated[Path, typer.Option(help="service settings (a relative path missing here is looked up in the checkout)")] = Path(
        "configs/serve.yaml"
    ),
    port: Annotated[int | None, typer.Option(help="port (overrides the config)")] = None,
    host: Annotated[str | None, typer.Option(help="host (overrides the config; 127.0.0.1 by default)")] = None,
) -> None:
    """Start the BentoML model service (`bentoml serve serving.service:EcomlabService`).

    The shipped settings are found from any folder (like quickstart's job configs), so `ecomlab serve`
    works where `ecomlab quickstart` ran; their store is that folder's ./mlflow.db."""
    from serving.settings import load_settings

    config = shipped_config(str(config))
    with user_errors():
        settings = load_settings(config)
    env = {**os.environ, "ECOMLAB_SERVE_CONFIG": str(config.resolve())}
    args = [
        sys.executable, "-m", "bentoml", "serve", "serving.service:EcomlabService",
        "--host", host or settings.host, "--port", str(port or settings.port),
    ]
    os.execve(sys.executable, args, env)
