"""Baseline for the Evaluator's change thresholds: the latest blessed model
*other than the candidate*.

TFX's LatestBlessedModelStrategy runs before Trainer and so, once the candidate
itself is blessed, a re-run whose Trainer was cached compares the model with
itself and the Evaluator re-executes for nothing. This strategy sees the
candidate (its resolver is downstream of Trainer) and excludes it: an unchanged
re-run resolves the same baseline as the first run, so Evaluator and Pusher are
cached, while a new model is compared with the previous blessed one.
"""

from __future__ import annotations

from typing import Any

from tfx import types
from tfx.components.evaluator import constants as eval_consts
from tfx.dsl.components.common import resolver

MODEL, BLESSING, CANDIDATE = "model", "model_blessing", "candidate"


class PreviousBlessedModelStrategy(resolver.ResolverStrategy):
    def __init__(self, **config: Any):  # the Resolver passes its config as kwargs
        self._config = config

    def resolve_artifacts(self, store: Any, input_dict: dict[str, list[types.Artifact]]
                          ) -> dict[str, list[types.Artifact]]:
        candidates = {a.id for a in input_dict.get(CANDIDATE, [])}
        blessed = {
            b.get_int_custom_property(eval_consts.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY): b
            for b in input_dict.get(BLESSING, [])
            if b.get_int_custom_property(eval_consts.ARTIFACT_PROPERTY_BLESSED_KEY) == 1
        }
        result: dict[str, list[types.Artifact]] = {MODEL: [], BLESSING: [],
                                                   CANDIDATE: list(input_dict.get(CANDIDATE, []))}
        for model in sorted(input_dict.get(MODEL, []), key=lambda a: a.id, reverse=True):
            if model.id in blessed and model.id not in candidates:
                result[MODEL], result[BLESSING] = [model], [blessed[model.id]]
                break
        return result
