"""The report's counterfactual tests, claim 6, claim 4's faithfulness rule and degenerate sides."""

from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from benchmarks.report import behaviour_estimates as bh
from benchmarks.report import claims as cl
from benchmarks.report.build import generate

from .conftest import write_run

ISNET_ACCURACY = {"biased": 0.95, "unbiased": 0.9, "deceiving": 0.9}
STANDARD_ACCURACY = {"biased": 0.95, "unbiased": 0.7, "deceiving": 0.5}


def _isnet_and_standard(tmp_path, seeds, isnet: dict, standard: dict) -> dict[str, bytes]:
    """The report's files for ISNet and the standard classifier on the fake biased experiment
    (ISNet level across splits, the standard classifier falling on the shifted ones)."""
    root = tmp_path / "records"
    for seed in seeds:
        write_run(root, "isnet", seed, ISNET_ACCURACY, **isnet)
        write_run(root, "standard", seed, STANDARD_ACCURACY, **standard)
    files, _ = generate(root, figures=False)
    return files


def _copy(kind: str, source: int, pred: list[int], points_to: list[int]) -> dict[str, np.ndarray]:
    return {"kind": np.asarray(kind), "source": np.asarray(source), "pred": np.asarray(pred),
            "background_class": np.asarray(points_to)}


def test_rerenderings_are_pooled_by_source_and_the_images_own_source_is_left_out():
    labels = np.array([0, 1, 2, 0])
    groups = np.array([0, 1, 2, 3])  # hospitals A, B, C train (majorities 0, 1, 2); D external
    intact = labels.copy()
    copies = {"rerendered:A": _copy("rerendered", 0, [0, 0, 0, 0], [0] * 4),
              "rerendered:B": _copy("rerendered", 1, [1, 1, 2, 1], [1] * 4),
              "rerendered:D": _copy("rerendered", 3, [0, 1, 1, 0], [-1] * 4),
              "mixed_random": _copy("mixed_random", -1, [1, 1, 2, 0], [1, 0, 0, 2])}
    arrays = {f"in/{name}/{field}": v for name, fields in copies.items() for field, v in fields.items()}
    tests = bh._tests(arrays, "in", labels, groups, intact)
    assert set(tests) == {bh.OTHER_TRAINING, bh.UNSEEN, "mixed_random"}
    other = tests[bh.OTHER_TRAINING]
    # image 0 (hospital A, label 0): only B counts (A is its own): predicted 1 = B's majority -> follows
    # image 1 (B, label 1): only A counts: predicted 0 = A's majority -> follows, flipped
    # image 2 (C, label 2): A -> 0 (follows), B -> 2 (does not): 0.5
    # image 3 (D, label 0): A points to its own class (undefined); B -> 1 (follows)
    assert other["follows_background"].tolist() == [1.0, 1.0, 0.5, 1.0]
    assert other["flip_rate"].tolist() == [1.0, 1.0, 0.5, 0.5]
    unseen = tests[bh.UNSEEN]  # D re-renders images 0-2; image 3 is D's own
    assert unseen["flip_rate"][:3].tolist() == [0.0, 0.0, 1.0] and np.isnan(unseen["flip_rate"][3])
    assert tests["mixed_random"]["accuracy"].tolist() == [0, 1, 1, 1]


def test_claim_6_fails_when_isnet_follows_the_background_more(tmp_path):
    files = _isnet_and_standard(tmp_path, (0, 1, 2), dict(follows=0.5, faithful=True), dict(follows=0.1, faithful=True))
    claims = pd.read_csv(io.BytesIO(files["tables/claims.csv"]))
    overall = claims[claims["experiment"] == "(overall)"].set_index("claim")["verdict"]
    assert overall[6] == cl.FAILS and overall[2] == cl.HOLDS
    assert "Where claim 6 (behaviour) disagrees" in files["README.md"].decode()
    behaviour = pd.read_csv(io.BytesIO(files["tables/behaviour_fake_bias_smoke.csv"]))
    row = behaviour[(behaviour["method"] == "isnet") & (behaviour["test"] == "deceiving")
                    & (behaviour["measure"] == "follows_background")]
    # half the images follow by construction; of the others, the 5 % predicted wrong on the intact image already
    # give the marker's class (with two classes the only other one)
    assert row["mean"].iloc[0] == pytest.approx(0.5 + 0.5 * 0.05, abs=0.01)


def test_claim_4_does_not_read_heatmaps_that_do_not_account_for_the_logits(tmp_path):
    files = _isnet_and_standard(tmp_path, (0, 1), dict(inside=0.95, faithful=False), dict(inside=0.3, faithful=True))
    claims = pd.read_csv(io.BytesIO(files["tables/claims.csv"]))
    finding = claims[(claims["claim"] == 4) & (claims["experiment"] == "fake_bias")].iloc[0]
    assert finding["verdict"] == cl.NOT_MEASURED
    assert "do not account for its logits" in finding["evidence"]
    faith = pd.read_csv(io.BytesIO(files["tables/faithfulness_fake_bias_smoke.csv"]))
    assert set(faith["metric"]) == {"background_relevance_share", "sum_over_logit", "sum_logit_correlation",
                                    "absorbed_share"}


def test_a_degenerate_side_is_at_chance_whatever_its_accuracy():
    metrics = pd.DataFrame([
        {"experiment": "e", "profile": "cpu", "method": m, "split": "external", "metric": "accuracy",
         "boot_low": 0.45, "boot_high": 0.55, "majority_share": 0.6, "top_class_share": share}
        for m, share in (("constant", 0.99), ("varied", 0.6))])
    analysis = SimpleNamespace(metrics=metrics)
    assert cl.at_chance(analysis, ("e", "cpu"), "constant", "external")
    assert cl.degenerate(analysis, ("e", "cpu"), "constant", "external")
    assert not cl.at_chance(analysis, ("e", "cpu"), "varied", "external")


def test_a_method_that_did_not_learn_is_marked_and_left_out_of_the_claims(tmp_path):
    root = tmp_path / "records"
    for seed in (0, 1, 2):
        write_run(root, "isnet", seed, {"biased": 0.95, "unbiased": 0.9, "deceiving": 0.9}, follows=0.05,
                  faithful=True)
        write_run(root, "standard", seed, {"biased": 0.95, "unbiased": 0.7, "deceiving": 0.5}, follows=0.6,
                  faithful=True)
        write_run(root, "rrr", seed, {"biased": 0.5, "unbiased": 0.5, "deceiving": 0.5}, follows=0.0, faithful=True)
    files, _ = generate(root, figures=False)
    text = files["README.md"].decode()
    assert "`rrr` (did not learn)" in text
    claims = pd.read_csv(io.BytesIO(files["tables/claims.csv"]))
    claim3 = claims[(claims["claim"] == 3) & (claims["experiment"] == "fake_bias")].iloc[0]
    assert claim3["verdict"] == cl.NOT_MEASURED and "did not learn: `rrr`" in claim3["evidence"]
    claim6 = claims[(claims["claim"] == 6) & (claims["experiment"] == "fake_bias")].iloc[0]
    assert "`rrr`" not in claim6["evidence"].split("left out")[0]  # no comparison with it, only the note
    failures = pd.read_csv(io.BytesIO(files["tables/failures_fake_bias_smoke.csv"]))
    learnt_then_chance = set(zip(failures["method"], failures["split"], strict=True))
    assert learnt_then_chance == {("standard", "deceiving")}
    assert "Failures explained" in text and "standard" in text.split("Failures explained")[1][:3000]


def test_a_smoke_report_says_first_and_beside_every_claim_that_it_is_not_evidence(tmp_path):
    files = _isnet_and_standard(tmp_path, (0, 1), dict(follows=0.1, faithful=True), dict(follows=0.5, faithful=True))
    readme = files["README.md"].decode()
    warning = readme.index(f"**Warning: records of the {cl.SMOKE_NOTE}")
    assert warning < readme.index("**Claim 1")  # before any verdict
    claims = pd.read_csv(io.BytesIO(files["tables/claims.csv"]))
    assert readme.count(f"**{cl.SMOKE_NOTE}.**") >= len(claims[claims["experiment"] != "(overall)"].dropna())
