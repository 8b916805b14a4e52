"""Training on a mix of sources: parsing, proportions, pairs without negatives, mined negatives, per-source loss."""

import json

import pytest

from grace_rag.config import EncoderConfig
from grace_rag.errors import ConfigError, DataError
from grace_rag.testing import tiny_backbone
from grace_rag.trainer.config import TrainConfig
from grace_rag.trainer.data import Triplet, load_supervised
from grace_rag.trainer.mix import DataSource, MixSampler, mine_negatives
from grace_rag.trainer.run import batch_for_step, checkpoint_dir, train

CL = dict(objective="contrastive", batch_size=2, rollouts=1,
          encoder=EncoderConfig(max_rationale_tokens=3, query_rationale_tokens=0, max_input_tokens=16),
          learning_rate=1e-2, lora=True, track_kl=False)


def test_source_spec_parses_an_optional_trailing_weight(tmp_path):
    assert DataSource.parse("a/train.jsonl:3") == DataSource("a/train.jsonl", 3.0)
    assert DataSource.parse("a/train.jsonl:0.25") == DataSource("a/train.jsonl", 0.25)
    assert DataSource.parse("a/train.jsonl") == DataSource("a/train.jsonl", 1.0)
    odd = tmp_path / "x:2"  # a file whose name ends in ":2" is a file, not a weight
    odd.write_text("")
    assert DataSource.parse(str(odd)) == DataSource(str(odd), 1.0)
    assert DataSource.coerce({"path": "b.jsonl", "weight": 2}) == DataSource("b.jsonl", 2.0)
    assert DataSource("../shared/data/squad/train.jsonl").name == "squad"
    assert DataSource("../shared/data/stsbenchmark/sts-train.tsv").name == "stsbenchmark"


@pytest.mark.bad_input
@pytest.mark.parametrize("value, message", [
    ({"path": "b.jsonl", "weight": -1}, "weight must be a finite number >= 0"),
    ({"path": "b.jsonl", "weight": float("nan")}, "weight must be a finite number >= 0"),
    ({"weight": 1}, "a data source is"),
    (3, "a data source is"),
])
def test_bad_sources_are_refused_in_one_line(value, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(data=[value])


@pytest.mark.bad_input
def test_weights_that_sum_to_zero_are_refused():
    with pytest.raises(ConfigError, match="weights sum to 0"):
        TrainConfig(data=["a.jsonl:0", "b.jsonl:0"])


@pytest.mark.bad_input
def test_a_missing_file_in_the_mix_is_refused_before_any_model_loads(tmp_path, triplet_file, monkeypatch):
    import grace_rag.trainer.run as run_mod

    monkeypatch.setattr(run_mod, "GraceTrainer", None)  # would fail loudly if reached
    cfg = TrainConfig(**CL, data=[str(triplet_file), str(tmp_path / "missing.jsonl") + ":2"],
                      output_dir=str(tmp_path / "o"))
    with pytest.raises(DataError, match="missing.jsonl: no such file or folder"):
        train(cfg)
    with pytest.raises(ConfigError, match="no training data"):
        train(TrainConfig(**CL, output_dir=str(tmp_path / "o")))


def test_sampler_draws_the_asked_proportions_and_every_example_per_pass():
    a = [f"a{i}" for i in range(10)]
    b = [f"b{i}" for i in range(6)]
    sampler = MixSampler([a, b], [3.0, 1.0], batch_size=2, seed=5)
    drawn = [sampler.batch(step) for step in range(4000)]
    share = sum(1 for source, _ in drawn if source == 0) / len(drawn)
    assert share == pytest.approx(0.75, abs=0.02)
    first_pass = [x for source, batch in drawn if source == 0 for x in batch][:10]
    assert sorted(first_pass) == sorted(a)  # one pass over a source sees each example once
    again = MixSampler([a, b], [3.0, 1.0], batch_size=2, seed=5)
    assert [again.batch(s) for s in (3999, 17, 0)] == [drawn[3999], drawn[17], drawn[0]]  # a pure function of step


def test_one_source_gives_the_single_file_batches():
    data = list(range(9))
    sampler = MixSampler([data], [1.0], batch_size=3, seed=2)
    assert [sampler.batch(s)[1] for s in range(7)] == [batch_for_step(data, s, 3, 2) for s in range(7)]


def test_a_zero_weight_source_is_never_drawn():
    sampler = MixSampler([["a", "b"], ["c"]], [1.0, 0.0], batch_size=2)
    assert {sampler.batch(s)[0] for s in range(200)} == {0}


def test_pairs_and_sts_pairs_load_without_negatives(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"query": "q1", "positive": "p1"}\n{"query": "q2", "positive": "p2", "negative": "n2"}\n')
    assert [t.negatives for t in load_supervised(pairs)] == [(), ("n2",)]
    sts = tmp_path / "sts-train.tsv"
    sts.write_text("4.5\tA man plays guitar.\tA man is playing a guitar.\n1.0\tA cat.\tThe stock fell.\n"
                   "4.0\tKids run.\tChildren are running.\n")
    assert load_supervised(sts) == [Triplet("A man plays guitar.", "A man is playing a guitar.", ()),
                                    Triplet("Kids run.", "Children are running.", ())]


def test_mined_negatives_are_other_positives_that_share_words():
    pairs = [Triplet("cats sleep", "the cat sleeps on a mat", ()),
             Triplet("dogs bark", "the dog barks at night", ()),
             Triplet("cat mat nap", "a cat naps on the mat", ()),
             Triplet("stocks", "stock markets fell", ("bonds rose",))]
    mined = mine_negatives(pairs)
    assert mined[3] == pairs[3]  # a pair that has a negative keeps it
    assert mined[0].negatives == ("a cat naps on the mat",)
    for original, new in zip(pairs, mined):
        assert new.negatives and original.positive not in new.negatives


def test_a_mixed_run_trains_on_pairs_and_logs_the_loss_per_source(tmp_path, triplet_file):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"query": q, "positive": q + " again"}) + "\n"
                             for q in ["cat sleeps mat", "proteins fold cell", "river flooded rain", "fox jumps dog"]))
    cfg = TrainConfig(**{**CL, "steps": 6, "save_every": 0}, data=[f"{triplet_file}:1", f"{pairs}:1"],
                      output_dir=str(tmp_path / "out"))
    train(cfg, backbone=tiny_backbone(), progress=False)
    lines = [json.loads(x) for x in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    steps = [x for x in lines if "source" in x]
    assert len(steps) == 6 and {x["source"] for x in steps} == {"triplets", "pairs"}
    for x in steps:
        assert x[f"loss[{x['source']}]"] == x["contrastive_loss"] > 0
    assert not checkpoint_dir(tmp_path / "out").exists()
