"""A pretrained start: weights learnt once on Fashion-MNIST, cached, loaded into every layer but the head."""

from __future__ import annotations

import pytest
import torch

from benchmarks.architectures import build_backbone
from benchmarks.run import pretraining


@pytest.fixture()
def small(monkeypatch, tmp_path):
    from benchmarks.data.fashion import find_fashion_mnist

    try:
        find_fashion_mnist(tmp_path)
    except FileNotFoundError:
        pytest.skip("Fashion-MNIST is not installed (Debian's dataset-fashion-mnist)")
    monkeypatch.setattr(pretraining, "IMAGES", 128)
    monkeypatch.setattr(pretraining, "EPOCHS", 1)
    return tmp_path


def test_pretrained_weights_are_cached_and_fill_all_but_the_head(small):
    state = pretraining.pretrained_state("fashion_mnist", "tiny_cnn", 1, 32, small)
    assert len(list(small.glob("pretrained-fashion_mnist-tiny_cnn-32px-*.pt"))) == 1
    again = pretraining.pretrained_state("fashion_mnist", "tiny_cnn", 1, 32, small)
    assert all(torch.equal(state[k], again[k]) for k in state)  # read back, not retrained
    torch.manual_seed(1)
    model = build_backbone("tiny_cnn", 3, 1)
    head_before = model[-1].weight.detach().clone()
    loaded = pretraining.load_matching(model, state)
    own = model.state_dict()
    assert all(torch.equal(own[k], state[k]) for k in loaded)
    assert not any(k.startswith(f"{len(model) - 1}.") for k in loaded)  # the 10-class head does not fit 3 classes
    assert torch.equal(model[-1].weight, head_before)


def test_an_unknown_source_or_backbone_is_refused(small):
    with pytest.raises(ValueError, match="unknown pretraining source"):
        pretraining.pretrained_state("imagenet", "tiny_cnn", 1, 32, small)
    with pytest.raises(ValueError, match="no pretrained tensor matches"):
        pretraining.load_matching(torch.nn.Linear(3, 2), {"other.weight": torch.zeros(1)})
