"""`python -m training.cli ...` (the MLproject entry points run it this way)."""

from training.cli import app

app()
