"""The synthetic shop as a source: a folder `ecomlab data generate` wrote, or generated in memory from the options."""

from __future__ import annotations

import hashlib
import json

from features import synthetic
from features.contract import STRING_COLUMNS, Accounting, Loaded, Quarantine, validate_schema
from features.readers.files import SourceError, files_digest
from features.source_config import DataSourceConfig


def load_synthetic(cfg: DataSourceConfig) -> Loaded:
    """Every generated line is clean (the generator follows the contract), so nothing is quarantined."""
    if cfg.path:
        folder = cfg.resolve(cfg.path)
        if not (folder / "lines.parquet").exists():
            raise SourceError(f"{cfg.source_file}: no generated data in {cfg.path}; run `ecomlab data generate --out {cfg.path}`")
        data = synthetic.read(folder)
        digest = files_digest(sorted(folder.glob("*.parquet")))
    else:
        data = synthetic.generate(cfg.synthetic)
        options = json.dumps(cfg.synthetic.model_dump(mode="json"), sort_keys=True)
        digest = hashlib.sha256(options.encode()).hexdigest()[:16]
    lines = data.lines.reset_index(drop=True)
    for col in STRING_COLUMNS:
        lines[col] = lines[col].astype("string")
    validate_schema(lines)
    accounting = Accounting(len(lines), len(lines), 0, 0, files=1)
    return Loaded(lines, Quarantine(), accounting, cfg.name, data.customers, data.inventory, digest)
