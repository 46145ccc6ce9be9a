"""Segment names and profiles. A segment is named from the features its model was trained on, only.

Name: the RFM grid's segment (`features.rfm`, the KPI's vocabulary) of the segment's typical
customer, i.e. its members' median R, F and M quintile scores among the customers the model was
fitted on (rounded up between two scores). An RFM axis the model does not use counts as the middle score (3), so nothing
is claimed about it. Of the model's other features (`features.rfm.QUALIFIERS`), the one whose
segment mean lies furthest, and at least `TOP` standard deviations, from the average (in signed
log1p units) adds its qualifier: "loyal (high returns)". Repeated names get " 2", " 3", ... in
segment-id order (the highest-revenue segment keeps the plain name).

Profiles (a report table and the heatmap) describe every feature the data has, used or not.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.customers import FEATURES
from features.rfm import MIDDLE, QUALIFIERS, SCORES, axis_score, grid_segment, qualified
from training.segment.scoring import common_space

TOP = 1.0  # a qualifier needs the segment mean this many standard deviations from the average


def segment_scores(table: pd.DataFrame, labels: np.ndarray, features: list[str], k: int) -> pd.DataFrame:
    """Per segment (rows 0..k-1), the median R, F and M scores of the RFM features among `features`."""
    scores = pd.DataFrame({SCORES[f]: axis_score(f, table[f].to_numpy()) for f in features if f in SCORES})
    return scores.groupby(labels).median().reindex(range(k))


def segment_z(table: pd.DataFrame, labels: np.ndarray, features: list[str], k: int) -> pd.DataFrame:
    """Per segment (rows 0..k-1), the mean of each feature in standard deviations of signed log1p(feature)."""
    z = pd.DataFrame(common_space(table[features].to_numpy(dtype=np.float64)), columns=features)
    return z.groupby(labels).mean().reindex(range(k))


def name_segments(scores: pd.DataFrame, zs: pd.DataFrame, k: int) -> dict[int, str]:
    """Unique names of segments 0..k-1 from their median scores (`segment_scores`) and the z of the model's
    other features (`segment_z`); only the columns given are used (see the module docstring)."""
    names: dict[int, str] = {}
    seen: dict[str, int] = {}
    for seg in range(k):
        base = _name(_row(scores, seg), _row(zs, seg))
        seen[base] = seen.get(base, 0) + 1
        names[seg] = base if seen[base] == 1 else f"{base} {seen[base]}"
    return names


def _row(frame: pd.DataFrame, seg: int) -> dict[str, float]:
    if seg not in frame.index:
        return {}
    return {str(c): float(v) for c, v in frame.loc[seg].items() if np.isfinite(v)}


def _name(scores: dict[str, float], z: dict[str, float]) -> str:
    r, f, m = (int(np.clip(np.floor(scores.get(axis, MIDDLE) + 0.5), 1, 5)) for axis in ("r", "f", "m"))
    name = str(grid_segment(np.array([r]), np.array([f]), np.array([m]))[0])
    extra = {feature: v for feature, v in z.items() if feature in QUALIFIERS and abs(v) >= TOP}
    if not extra:
        return name
    strongest = max(extra, key=lambda feature: abs(extra[feature]))
    return qualified(name, strongest, extra[strongest] > 0)


def describe_segments(
    table: pd.DataFrame, labels: np.ndarray, features: list[str], k: int
) -> tuple[dict[int, str], pd.DataFrame]:
    """Names from the model's `features` and the profile table of every feature in `table`."""
    profiled = [f for f in FEATURES if f in table.columns]
    zs = segment_z(table, labels, profiled, k)
    scores = segment_scores(table, labels, features, k)
    names = name_segments(scores, zs[[f for f in features if f not in SCORES]], k)
    return names, profile_segments(table, labels, names, profiled, zs.join(scores.add_prefix("score_")))


def profile_segments(
    table: pd.DataFrame, labels: np.ndarray, names: dict[int, str], features: list[str], extra: pd.DataFrame
) -> pd.DataFrame:
    """Size, share, (net) revenue share and feature means of each segment, then `extra` per segment:
    z of every feature (`z_<feature>`, the heatmap) and the median RFM scores the names come from."""
    k = len(names)
    sizes = np.bincount(labels, minlength=k)
    revenue = np.bincount(labels, weights=table["monetary"].to_numpy(), minlength=k)
    total = revenue.sum()
    means = table[features].groupby(labels).mean().reindex(range(k))
    out = pd.DataFrame(
        {
            "segment_id": np.arange(k),
            "segment_name": [names[i] for i in range(k)],
            "customers": sizes,
            "share": sizes / sizes.sum(),
            "revenue": revenue,
            "revenue_share": revenue / total if total > 0 else np.full(k, np.nan),
        }
    )
    out = out.join(means.add_prefix("mean_").reset_index(drop=True))
    zcols = extra.rename(columns={c: f"z_{c}" for c in extra.columns if not str(c).startswith("score_")})
    return out.join(zcols.reset_index(drop=True))
