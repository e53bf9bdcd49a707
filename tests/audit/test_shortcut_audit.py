"""Each synthetic shortcut lies where its dataset card says, on the built cpu-profile data.

The audit (:mod:`benchmarks.audit.shortcut`) is first checked on small hand-made data whose
answer is known (a group painted into the foreground must be found, a clean one must not),
then run on every synthetic experiment as the harness builds it (``spec.build`` at the cpu
profile, whatever sizes that profile sets).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.api import DataBundle, TensorSplit
from benchmarks.audit import __main__ as audit_command
from benchmarks.audit import page as audit_page
from benchmarks.audit.shortcut import (
    AUDITED,
    CNNConfig,
    arrays_of,
    audit_bundle,
    audit_experiment,
    logistic_group_accuracy,
    mask_statistics,
    verdicts,
)
from benchmarks.registry import discover_experiments


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("audit_cache")


# --------------------------------------------------------------------------- known answers
def _toy_split(n: int, rng: np.random.Generator, shares: np.ndarray, leak: float) -> TensorSplit:
    """16-px images: a disc (the mask) whose texture carries the label (stripes for class 1),
    on a background whose level is the group's; the group follows the label with ``shares``
    (``shares[label]`` = P(group == label)). ``leak`` also brightens the disc by group."""
    labels = rng.integers(0, 2, n)
    groups = np.where(rng.random(n) < shares[labels], labels, 1 - labels)
    yy, xx = np.mgrid[:16, :16]
    cy, cx = rng.integers(6, 10, (2, n))
    disc = (yy[None] - cy[:, None, None]) ** 2 + (xx[None] - cx[:, None, None]) ** 2 <= 16
    stripes = (xx[None] % 2 == 0) & (labels[:, None, None] == 1)
    fg = 0.4 + 0.3 * stripes + leak * groups[:, None, None] + 0.05 * rng.standard_normal((n, 16, 16))
    bg = 0.1 + 0.5 * groups[:, None, None] + 0.05 * rng.standard_normal((n, 16, 16))
    images = np.where(disc, fg, bg).clip(0, 1)[:, None]
    return TensorSplit(torch.from_numpy((images * 255).round().astype(np.uint8)), torch.from_numpy(labels),
                       torch.from_numpy(disc[:, None].astype(np.uint8)), torch.from_numpy(groups))


def _toy_bundle(leak: float) -> DataBundle:
    rng = np.random.default_rng(0)
    biased, balanced = np.array([0.9, 0.9]), np.array([0.5, 0.5])
    return DataBundle(train=_toy_split(400, rng, biased, leak), val=_toy_split(50, rng, biased, leak),
                      tests={"in_distribution": _toy_split(300, rng, biased, leak),
                             "external": _toy_split(300, rng, balanced, leak)},
                      class_names=("a", "b"), in_channels=1, image_size=16, checksum="toy")


def test_mask_statistics_read_the_mask_only() -> None:
    rng = np.random.default_rng(1)
    images = rng.random((20, 1, 12, 12)).astype(np.float32)
    masks = rng.random((20, 1, 12, 12)) < 0.6
    stats = mask_statistics(images, masks)
    for i in range(3):
        inside = images[i, 0][masks[i, 0]]
        expected = [masks[i].mean(), inside.mean(), inside.std(), *np.quantile(inside, [0.05, 0.25, 0.5, 0.75, 0.95])]
        np.testing.assert_allclose(stats[i, :8], expected, atol=1e-6)
    other = np.where(masks, images, rng.random(images.shape).astype(np.float32))  # new background
    np.testing.assert_array_equal(mask_statistics(other, masks), stats)


def test_a_group_painted_into_the_foreground_is_found() -> None:
    fit, test = (arrays_of(s) for s in (_toy_split(400, np.random.default_rng(2), np.array([0.9, 0.9]), 0.2),
                                        _toy_split(300, np.random.default_rng(3), np.array([0.9, 0.9]), 0.2)))
    alone = logistic_group_accuracy(fit, test, 2, use_stats=False)
    assert alone == pytest.approx(0.9, abs=0.05)
    assert logistic_group_accuracy(fit, test, 2, use_stats=True) > 0.98



def test_the_command_names_itself_and_refuses_an_unknown_experiment(capsys) -> None:
    with pytest.raises(SystemExit):
        audit_command.main(["no_such_experiment"])
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m benchmarks.audit") and "unknown experiment 'no_such_experiment'" in err

@pytest.fixture(scope="module")
def toy_audits():
    """Audits of the hand-made data: without and with the group painted into the foreground."""
    config = CNNConfig(steps=60)
    return [audit_bundle(_toy_bundle(leak), "toy", "in_distribution", ("external",), config=config)
            for leak in (0.0, 0.2)]


@pytest.mark.slow
def test_audit_verdicts_have_known_answers(toy_audits) -> None:
    clean, leaky = (verdicts(a) for a in toy_audits)
    assert all(ok for ok, _ in clean.values()), clean
    assert not leaky["foreground adds nothing to the label"][0], leaky


@pytest.mark.slow
def test_audit_page_and_figure(toy_audits, tmp_path) -> None:
    page = audit_page.markdown(toy_audits[:1], "toy", "cmd")
    assert page.startswith(audit_page.MARK) and "Every check passes." in page and "| `toy` | hospital |" in page
    assert "foreground adds nothing to the label" in audit_page.markdown(toy_audits[1:], "toy", "cmd")
    png = tmp_path / "audit.png"
    audit_page.save(png, audit_page.figure(toy_audits, "toy"))
    assert audit_page._ours(png) and png.read_bytes()[:4] == b"\x89PNG"
    audit_page.save(png, audit_page.figure(toy_audits, "toy"))  # its own file: rewritten
    foreign = tmp_path / "notes.md"
    foreign.write_text("someone else's notes")
    with pytest.raises(SystemExit, match="not written by this command"):
        audit_page.save(foreign, page.encode())
    assert foreign.read_text() == "someone else's notes"


# --------------------------------------------------------------------------- the built data
@pytest.mark.slow
@pytest.mark.parametrize("name", AUDITED)
def test_the_shortcut_lies_where_the_card_says(name: str, cache_dir) -> None:
    """One audit per experiment (its checks are listed together when any fails): the
    foreground adds nothing to the label about the bias group, the background predicts the
    label in distribution only, and the foreground's label accuracy transfers."""
    spec = discover_experiments()[name]
    missing = spec.missing_data(cache_dir)
    if missing:
        pytest.skip(missing)
    audit = audit_experiment(spec, "cpu", cache_dir)
    failed = [f"{check}: {why}" for check, (ok, why) in verdicts(audit).items() if not ok]
    assert not failed, f"{name}:\n" + "\n".join(failed)
