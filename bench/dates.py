"""Order-date parsing on 1M rows: one format as before, against ISO 8601 forms mixed row by row.

The target (issue 11): parsing 1M mixed rows takes at most twice the time the loader took before on
a single-format column. "Before" is the old step of `features.readers.normalise`: one
`pd.to_datetime` call with the config's format (or pandas' inference from the first row when there
was none), then the cast to datetime64[ns]. "Mixed" is `features.readers.dates.parse_dates` on a
column that cycles through date only, `T` and space separators, minutes only, fractions, `Z` and
offsets, with one row in a thousand that is no ISO date (those take the per-row second look).
The mixed figure is also given with a `timezone` stated (offsets converted to Europe/London).

Both columns are pandas "string" series, as the loader holds them. Each figure is the best of
`--repeat` runs in this process (single-threaded pandas code; no BLAS involved).

    uv run --frozen python bench/dates.py [--rows 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from features.readers.dates import parse_dates  # noqa: E402

SINGLE_FORMAT = "%Y-%m-%d %H:%M:%S"
MIXED_FORMS = (
    "{d}",
    "{d}T{t}",
    "{d} {t}",
    "{d}T{hm}",
    "{d}T{t}.{us}",
    "{d}T{t}Z",
    "{d}T{t}+02:00",
    "{d} {t}.{us}-05:30",
)
BAD_EVERY = 1000  # one row in a thousand is no ISO date


def columns(rows: int, seed: int = 7) -> tuple[pd.Series, pd.Series]:
    """(single-format column, mixed ISO column) of `rows` random moments in 2023-2024."""
    rng = np.random.default_rng(seed)
    moments = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 2 * 365 * 86400, rows), unit="s")
    day, clock = moments.strftime("%Y-%m-%d"), moments.strftime("%H:%M:%S")
    single = pd.Series(day + " " + clock, dtype="string")
    micro = rng.integers(0, 1_000_000, rows)
    mixed = [
        MIXED_FORMS[i % len(MIXED_FORMS)].format(d=d, t=t, hm=t[:5], us=f"{u:06d}")
        for i, (d, t, u) in enumerate(zip(day, clock, micro))
    ]
    for i in range(BAD_EVERY // 2, rows, BAD_EVERY):
        mixed[i] = "03/01/2024" if i % 2 else "2024-02-30"
    return single, pd.Series(mixed, dtype="string")


def before(text: pd.Series, date_format: str | None) -> pd.Series:
    """The loader's old date step: one pandas call with one format for the whole column."""
    parsed = pd.to_datetime(text, format=date_format, errors="coerce")
    return parsed.astype("datetime64[ns]")


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    single, mixed = columns(args.rows)
    checked = parse_dates(mixed)
    bad = int((checked.unparseable | checked.out_of_range).sum())
    assert bad == len(range(BAD_EVERY // 2, args.rows, BAD_EVERY)), bad
    assert checked.values.notna().sum() == args.rows - bad

    figures = {
        "before, single format, format given": best(lambda: before(single, SINGLE_FORMAT), args.repeat),
        "before, single format, inferred": best(lambda: before(single, None), args.repeat),
        "now, single format, format given": best(lambda: parse_dates(single, SINGLE_FORMAT), args.repeat),
        "now, mixed ISO 8601 (naive UTC)": best(lambda: parse_dates(mixed), args.repeat),
        "now, mixed ISO 8601, timezone Europe/London": best(lambda: parse_dates(mixed, None, "Europe/London"), args.repeat),
    }
    print(f"order dates: {args.rows:,} rows, best of {args.repeat}; pandas {pd.__version__}, "
          f"numpy {np.__version__}, Python {platform.python_version()}; {bad:,} bad rows in the mixed column")
    for label, seconds in figures.items():
        print(f"  {label:<46} {seconds:7.3f} s   {args.rows / seconds / 1e6:5.2f} M rows/s")
    for label in ("now, mixed ISO 8601 (naive UTC)", "now, mixed ISO 8601, timezone Europe/London"):
        for ref in ("before, single format, format given", "before, single format, inferred"):
            ratio = figures[label] / figures[ref]
            verdict = "within" if ratio <= 2 else "OVER"
            print(f"  {label} / {ref}: {ratio:.2f} x ({verdict} the 2x target)")

if __name__ == "__main__":
    main()
