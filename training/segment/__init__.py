"""The K-means customer segmenter family (`SegmenterFamily`): config, fit, THE score, names, report.

The model is one scikit-learn Pipeline on RAW customer feature values (transform -> StandardScaler
-> KMeans), served as `serving.models.segmenter.SegmentModel`, so the registered model takes the
features as `features.customers` builds them. Segment ids are ordered by (net) revenue share
(0 = the segment with the most revenue); names use the RFM vocabulary of `features.rfm`.

Modules: config (the job's `model:` section), fit, naming (names and profiles), scoring (the one
score of every model: trials, RFM baseline, candidate, champion), baseline, report and figures,
family (the platform's hooks).
"""

from serving.models.segmenter import SegmentModel  # models registered before the move pickled this path
from training.segment.baseline import RFMBaseline
from training.segment.config import SegmentConfig
from training.segment.family import SegmenterFamily, examples
from training.segment.fit import Segmenter, build_pipeline, fit_segmenter
from training.segment.naming import name_segments
from training.segment.scoring import common_space, score_segments

__all__ = [
    "RFMBaseline", "SegmentConfig", "SegmentModel", "Segmenter", "SegmenterFamily", "build_pipeline", "common_space",
    "examples", "fit_segmenter", "name_segments", "score_segments",
]
