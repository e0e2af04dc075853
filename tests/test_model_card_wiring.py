"""Fast: every Pusher of the shipped taxi pipeline (serving, variants, TFLite, TF.js targets) has its
ModelCard node, fed by that Pusher and by the Evaluator that judged the pushed model."""

from __future__ import annotations

import json

from tfx.components.pusher.component import Pusher

from pipeline.config import load_config
from pipeline.pipeline_def import CARD_ID, EVALUATOR_ID, create_pipeline
from tests.conftest import TAXI_CONFIG


def test_every_pusher_has_a_card_fed_by_its_own_push_and_evaluator():
    # Checks: no Pusher lacks a card; each card reads its own Pusher's output (not another target's),
    # names the folder that Pusher pushes to, and takes metrics from the Evaluator of the pushed model
    # (a variant's own Evaluator; a converted model's source model) and the blessing that gated the push.
    cfg = load_config(TAXI_CONFIG, check_data=False)
    nodes = {n.id: n for n in create_pipeline(cfg).components}
    pushers = {i: n for i, n in nodes.items() if isinstance(n, Pusher)}
    variants = {v.name for v in cfg.optimization.variants}
    assert len(pushers) >= 6 and variants, sorted(pushers)  # serving + variants + mobile/web targets
    for pusher_id, pusher in pushers.items():
        suffix = pusher_id.removeprefix("Pusher")
        card = nodes[CARD_ID + suffix]
        inputs = {key: channel.producer_component_id for key, channel in card.inputs.items()}
        target = card.exec_properties["target"]
        base = json.loads(pusher.exec_properties["push_destination"])["filesystem"]["base_directory"]
        assert base == str(cfg.pushed_dir(target)), (pusher_id, target, base)
        assert inputs["pushed_model"] == pusher_id
        model = card.exec_properties["model_name"]
        assert inputs["evaluation"] == (EVALUATOR_ID if model == "trained" else f"{EVALUATOR_ID}_{model}")
        converter = {"mobile": "TFLiteConverter", "web": "TFJSConverter"}.get(target.split("_")[0])
        assert inputs["model_blessing"] == (converter + ("" if model == "trained" else f"_{model}")
                                            if converter else inputs["evaluation"]), pusher_id
        assert pusher.inputs["model_blessing"].producer_component_id == inputs["model_blessing"], pusher_id
        assert (inputs["statistics"], inputs["examples"]) == ("StatisticsGen", "CsvExampleGen")
        assert inputs["feature_scores"] == "FeatureSelector" and inputs["cleaning_report"] == "DataCleaner"
        assert card.exec_properties["description"] == cfg.description and cfg.description
    assert {nodes[CARD_ID + s].exec_properties["model_name"] for s in ("_" + v for v in variants)} == variants
