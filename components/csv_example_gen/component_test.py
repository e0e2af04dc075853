"""CsvExampleGen (ours) in real TFX pipelines: awkward R/pandas-style files, and taxi vs stock CsvExampleGen."""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf
from tfx import v1 as tfx
from tfx.proto import example_gen_pb2

from components.csv_example_gen import CsvExampleGen
from tests.conftest import TAXI_CSV, run_example_gen


def _records(split_dir: Path) -> list[bytes]:
    out = []
    for path in sorted(split_dir.glob("*.gz")):
        out += [r.numpy() for r in tf.data.TFRecordDataset(str(path), compression_type="GZIP")]
    return out


def _value(feature: tf.train.Feature):
    kind = feature.WhichOneof("kind")
    values = list(getattr(feature, kind).value) if kind else []
    return kind, (values[0] if values else None)


R_STYLE = (  # R write.csv: quoted header, "" index column, NA, a quoted newline
    '"","trip id","fare","note"\n'
    '"1",1,12.5,"plain"\n'
    '"2",2,NA,"two\nlines"\n'
    '"3",3,7,"has, comma"\n')
PANDAS_SEMICOLON = (  # pandas to_csv(sep=";") re-saved: BOM, CRLF, 'Unnamed: 0' index, header padded
    "\ufeffUnnamed: 0; trip id ;fare;note\r\n"
    "0;4;3.25;\r\n"
    "1;5;null;semi\r\n")


def test_awkward_files_become_typed_examples(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a_r.csv").write_text(R_STYLE, newline="")
    (data / "b_pandas.csv").write_bytes(PANDAS_SEMICOLON.encode())
    gen = CsvExampleGen(str(data), input_config=example_gen_pb2.Input(splits=[
        example_gen_pb2.Input.Split(name="single_split", pattern="*.csv")]),
        output_config=example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
            example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=2),
            example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=1)])))
    assert gen.id == "CsvExampleGen"  # the stock id: MLMD lineage and downstream nodes unchanged
    examples_dir = run_example_gen(tmp_path, "awkward", gen)
    by_split = {s: [tf.train.Example.FromString(r) for r in _records(examples_dir / f"Split-{s}")]
                for s in ("train", "eval")}
    examples = by_split["train"] + by_split["eval"]
    assert len(examples) == 5  # every row once; the quoted newline did not split a row
    assert all(by_split.values())  # hash buckets 2:1 over 5 rows: both splits non-empty
    rows = {}
    for ex in examples:
        feats = ex.features.feature
        # Quotes and padding gone from names; the index column is not a feature.
        assert set(feats) == {"trip id", "fare", "note"}
        rows[feats["trip id"].int64_list.value[0]] = {k: _value(v) for k, v in feats.items()}
    # trip id typed int, fare float (NA/null are missing, 7 an int inside a float column), note string
    # (a missing note is an empty list of its type, as stock CsvExampleGen writes it).
    assert rows[1] == {"trip id": ("int64_list", 1), "fare": ("float_list", 12.5), "note": ("bytes_list", b"plain")}
    assert rows[2]["fare"] == ("float_list", None)
    assert rows[2]["note"] == ("bytes_list", b"two\nlines")
    assert rows[3]["fare"] == ("float_list", 7.0)
    assert rows[3]["note"] == ("bytes_list", b"has, comma")
    assert rows[4] == {"trip id": ("int64_list", 4), "fare": ("float_list", 3.25), "note": ("bytes_list", None)}
    assert rows[5]["fare"] == ("float_list", None)
    assert rows[5]["note"] == ("bytes_list", b"semi")


def test_taxi_examples_identical_to_stock_csv_example_gen(tmp_path):
    """On clean data ours writes the very same serialized tf.Examples as stock CsvExampleGen, so the
    hash split puts every row in the same split and the shipped schema sees the same types."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "data.csv").symlink_to(TAXI_CSV)
    input_config = example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="single_split", pattern="*.csv")])
    buckets = {"train": 8, "eval": 1, "test": 1}
    output_config = example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
        example_gen_pb2.SplitConfig.Split(name=s, hash_buckets=b) for s, b in buckets.items()]))
    ours = run_example_gen(tmp_path, "ours", CsvExampleGen(str(data), input_config=input_config,
                                                           output_config=output_config))
    stock = run_example_gen(tmp_path, "stock", tfx.components.CsvExampleGen(
        input_base=str(data), input_config=input_config, output_config=output_config))
    total = 0
    for split in ("train", "eval", "test"):
        got, want = _records(ours / f"Split-{split}"), _records(stock / f"Split-{split}")
        # Compare as sets of examples: Beam does not fix the order of records within a split.
        assert sorted(got) == sorted(want), split
        total += len(got)
    assert total == 15002


def test_latest_span_and_partition_feature(tmp_path):
    """input_config {SPAN} patterns and partition_feature_name work as with stock CsvExampleGen: only the
    latest span is read (and recorded on the artifact), and rows sharing the partition value share a split."""
    for span, rows in ((1, ["a,1", "b,2"]), (2, [f"{'xyz'[i % 3]},{i}" for i in range(30)])):
        folder = tmp_path / "data" / f"span-{span}"
        folder.mkdir(parents=True)
        (folder / "part.csv").write_text("group,n\n" + "\n".join(rows) + "\n")
    split_config = example_gen_pb2.SplitConfig(partition_feature_name="group", splits=[
        example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=1),
        example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=1)])
    gen = CsvExampleGen(str(tmp_path / "data"), input_config=example_gen_pb2.Input(splits=[
        example_gen_pb2.Input.Split(name="single_split", pattern="span-{SPAN}/*.csv")]),
        output_config=example_gen_pb2.Output(split_config=split_config))
    examples_dir = run_example_gen(tmp_path, "spans", gen)
    groups: dict[str, set[bytes]] = {}
    ns = []
    for split in ("train", "eval"):
        for record in _records(examples_dir / f"Split-{split}"):
            ex = tf.train.Example.FromString(record)
            groups.setdefault(split, set()).add(ex.features.feature["group"].bytes_list.value[0])
            ns.append(ex.features.feature["n"].int64_list.value[0])
    assert sorted(ns) == list(range(30))  # span 2 only
    assert sum(map(len, groups.values())) == 3  # each group in exactly one split
    store = tfx.orchestration.metadata.sqlite_metadata_connection_config(str(tmp_path / "spans" / "m.sqlite"))
    from ml_metadata.metadata_store import metadata_store

    (artifact,) = metadata_store.MetadataStore(store).get_artifacts_by_type("Examples")
    assert artifact.custom_properties["span"].int_value == 2
