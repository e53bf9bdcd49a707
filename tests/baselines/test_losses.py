"""Known-answer tests of the baselines' losses (each checked against a case whose value is
known by hand), in the spirit of Quantus' all / none / half tests."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from baselines.ag_sononet import attention_pool
from baselines.gain import GradCAM, attention_mining_loss, soft_mask, supervision_loss
from baselines.ham import applies_to, find_normal_class, ham_attention_loss
from baselines.rrr import rrr_penalty
from baselines.segment_classify import SegmentThenClassify, SegmentThenClassifyMethod, apply_mask
from benchmarks.api import Batch, ModelContext
from benchmarks.architectures import SmallCNN, build_backbone, segmentation_loss, unet_widths_for

SIZE = 8


def square_mask(batch: int = 2, size: int = SIZE, lo: int = 2, hi: int = 6) -> torch.Tensor:
    m = torch.zeros(batch, 1, size, size)
    m[..., lo:hi, lo:hi] = 1.0
    return m


# ----------------------------------------------------------------------------- RRR
class MaskedLinear(nn.Module):
    """Logits from the pixels inside a fixed mask only: the input gradient vanishes outside."""

    def __init__(self, mask: torch.Tensor, classes: int = 3) -> None:
        super().__init__()
        self.register_buffer("mask", mask)
        self.fc = nn.Linear(mask[0].numel(), classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc((x * self.mask).flatten(1))


def test_rrr_penalty_is_zero_when_the_input_gradient_vanishes_outside_the_mask() -> None:
    torch.manual_seed(0)
    mask = square_mask()
    model = MaskedLinear(mask)
    x = torch.rand(2, 1, SIZE, SIZE)
    _, penalty = rrr_penalty(model, x, mask)
    assert float(penalty.detach()) == 0.0
    _, inverted = rrr_penalty(model, x, 1 - mask)  # the same gradients now lie on the "background"
    assert float(inverted.detach()) > 1e-6


def test_rrr_penalty_known_value_and_differentiable() -> None:
    # logits (s, -s) with s = c * sum(x): sum_k log p_k = log sig(2s) + log sig(-2s), whose
    # derivative in s is 2 (1 - 2 sig(2s)) = -1 at sig(2s) = 3/4; so dL/dx = -c everywhere and
    # the penalty is c^2 times the number of background pixels (per image, batch-averaged).
    c, n = 0.5, SIZE * SIZE
    model = nn.Linear(n, 2, bias=False)
    with torch.no_grad():
        model.weight[0].fill_(c)
        model.weight[1].fill_(-c)
    flat = nn.Sequential(nn.Flatten(), model)
    x = torch.full((2, 1, SIZE, SIZE), math.log(3.0) / (2 * c * n))
    mask = square_mask()
    _, penalty = rrr_penalty(flat, x, mask)
    background = float((1 - mask[0]).sum())
    assert float(penalty.detach()) == pytest.approx(c * c * background, rel=1e-5)
    penalty.backward()  # double back-propagation reaches the weights
    assert model.weight.grad is not None and model.weight.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- GAIN
def identity_cam_model() -> nn.Sequential:
    """conv 1x1 (weight 1) -> ReLU -> GAP -> linear (+1, -1): Grad-CAM of class 0 is the
    rectified input divided by its maximum."""
    conv = nn.Conv2d(1, 1, 1, bias=False)
    fc = nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        fc.weight.copy_(torch.tensor([[1.0], [-1.0]]))
    return nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), fc)


def test_gain_supervision_is_zero_when_the_gradcam_equals_the_mask() -> None:
    mask = square_mask()
    gradcam = GradCAM(identity_cam_model())
    _, cam = gradcam(mask, torch.zeros(2, dtype=torch.long), create_graph=True)
    assert gradcam.layer_name == "1"  # the ReLU: the last feature map with more than one pixel
    assert cam.requires_grad  # differentiable Grad-CAM
    assert torch.allclose(cam, mask, atol=1e-6)
    assert float(supervision_loss(cam, mask).detach()) == pytest.approx(0.0, abs=1e-10)
    assert float(supervision_loss(1 - mask, mask)) == pytest.approx(1.0)  # every pixel off by one


def test_gain_soft_mask_and_attention_mining() -> None:
    cam = torch.tensor([0.0, 0.5, 1.0]).view(1, 1, 1, 3)
    t = soft_mask(cam, omega=10.0, sigma=0.5)
    expected = torch.sigmoid(torch.tensor([-5.0, 0.0, 5.0])).view(1, 1, 1, 3)
    assert torch.allclose(t, expected)
    # a class-0 score that only sees the attended pixels; erasing them all leaves p0 = 1/2
    model = identity_cam_model()
    images = square_mask(batch=1)
    full_cam = torch.ones_like(images)
    l_am = attention_mining_loss(model, images, full_cam, torch.zeros(1, dtype=torch.long), omega=1e4, sigma=0.5)
    assert float(l_am.detach()) == pytest.approx(0.5, abs=1e-4)


def test_gain_attention_mining_leaves_batchnorm_statistics_alone() -> None:
    """The erased images train the weights through L_am but never enter the running statistics;
    the layer's momentum is restored afterwards."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(2, 2)).train()
    bn = model[1]
    mean, var = bn.running_mean.clone(), bn.running_var.clone()
    images = torch.rand(4, 1, 6, 6) + 3.0  # far from the initial statistics: any update would show
    l_am = attention_mining_loss(model, images, torch.full_like(images, 0.2), torch.zeros(4, dtype=torch.long),
                                 omega=10.0, sigma=0.5)
    assert torch.equal(bn.running_mean, mean) and torch.equal(bn.running_var, var) and bn.momentum == 0.1
    l_am.backward()
    assert model[0].weight.grad is not None and model[0].weight.grad.abs().sum() > 0
    model(images)  # an ordinary training pass still updates them
    assert not torch.equal(bn.running_mean, mean)


# ----------------------------------------------------------------------------- multi-task U-Net
def test_multitask_segmentation_loss_is_zero_for_the_perfect_mask() -> None:
    mask = square_mask()
    bce, dice = segmentation_loss((2 * mask - 1) * 40.0, mask)
    assert float(bce) < 1e-6 and float(dice) < 1e-6
    bce_bad, dice_bad = segmentation_loss((1 - 2 * mask) * 40.0, mask)
    assert float(bce_bad) > 10 and float(dice_bad) > 0.9


def test_unet_levels_adapt_to_the_image_side() -> None:
    assert unet_widths_for(224, (64, 128, 256, 512, 1024)) == (64, 128, 256, 512, 1024)
    assert unet_widths_for(28, (16, 32, 64, 128)) == (16, 32, 64)


# ----------------------------------------------------------------------------- HAM
def test_ham_attention_loss_known_cases() -> None:
    mask = square_mask()
    abnormal = torch.tensor([False, False])
    normal = torch.tensor([True, True])
    assert float(ham_attention_loss(mask.clone(), mask, abnormal)) == 0.0  # attention = mask
    assert float(ham_attention_loss(torch.zeros_like(mask), mask, normal)) == 0.0  # nothing attended
    ones = torch.ones_like(mask)
    assert float(ham_attention_loss(ones, mask, abnormal, margin=0.5)) == pytest.approx(1.5)  # out 1 + hinge 0.5
    assert float(ham_attention_loss(ones, mask, normal)) == pytest.approx(2.0)  # out 1 + mean 1
    # a coarser level: the mask is area-averaged to the attention grid (4x4 -> 2x2 here)
    coarse = torch.nn.functional.avg_pool2d(mask, 2)
    assert float(ham_attention_loss(coarse.clone(), mask, abnormal)) == 0.0


def test_ham_needs_a_normal_class() -> None:
    assert applies_to(frozenset({"has_normal_class"})) is None
    reason = applies_to(frozenset({"biased_mnist"}))
    assert isinstance(reason, str) and "normal" in reason
    assert find_normal_class(("COVID-19", "Normal", "Pneumonia"), None) == 1
    assert find_normal_class(("a", "b"), 1) == 1
    with pytest.raises(ValueError, match="normal class"):
        find_normal_class(("zero", "one"), None)


# ----------------------------------------------------------------------------- segment-then-classify
class ConstantSegmenter(nn.Module):
    def __init__(self, logit: float) -> None:
        super().__init__()
        self.logit = logit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x[:, :1], self.logit)


def test_segment_then_classify_all_ones_mask_is_the_identity() -> None:
    torch.manual_seed(0)
    classifier = SmallCNN(3, 1, widths=(4, 8)).eval()
    x = torch.rand(2, 1, SIZE, SIZE)
    assert torch.equal(apply_mask(x, torch.ones_like(x)), x)
    pipeline = SegmentThenClassify(ConstantSegmenter(20.0), classifier).eval()  # everything foreground
    with torch.no_grad():
        assert torch.allclose(pipeline(x), classifier(x))
        background_only = SegmentThenClassify(ConstantSegmenter(-20.0), classifier).eval()
        assert torch.allclose(background_only(x), classifier(torch.zeros_like(x)))


def test_segment_then_classify_warm_up_switches_to_the_predicted_mask() -> None:
    ctx = ModelContext(3, 1, 16, "smoke", "tiny_cnn", lambda k: build_backbone("tiny_cnn", k, 1))
    method = SegmentThenClassifyMethod(ctx, warmup_epochs=1)
    method.on_epoch_start(0)
    assert method.uses_true_mask
    method.on_epoch_start(1)
    assert not method.uses_true_mask
    batch = Batch(torch.rand(2, 1, 16, 16), torch.tensor([0, 1]), square_mask(size=16, lo=4, hi=12), torch.zeros(2))
    assert torch.isfinite(method.training_step(batch)["loss"])


# ----------------------------------------------------------------------------- AG-Sononet
def test_attention_pool_with_uniform_attention_is_the_mean() -> None:
    x = torch.rand(2, 5, 4, 4)
    assert torch.allclose(attention_pool(x, torch.ones(2, 1, 4, 4)), x.mean(dim=(2, 3)), atol=1e-5)
    one_hot = torch.zeros(2, 1, 4, 4)
    one_hot[..., 1, 2] = 1.0
    assert torch.allclose(attention_pool(x, one_hot), x[..., 1, 2], atol=1e-5)
