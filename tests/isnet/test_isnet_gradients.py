"""Second-order path: gradcheck of the heatmap loss, parameter identity, optimiser, ISNet variants."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import isnet


class LossOfHeatmaps(nn.Module):
    """``heatmap_loss(explain(net, x, 'all'))`` as a module, so functional_call can vary its weights."""

    def __init__(self, net, masks, **kw):
        super().__init__()
        self.net, self.masks, self.kw = net, masks, kw

    def forward(self, x):
        h = isnet.explain(self.net, x, "all", create_graph=True, **self.kw)
        return isnet.heatmap_loss(h, self.masks, C1=0.01, C2=0.02)


@pytest.mark.parametrize("kw", [{}, {"rule": "zplus"}, {"rule": "selective"}, {"input_rule": "epsilon"}])
def test_gradcheck_heatmap_loss_wrt_weights(tiny_net, kw):
    """BN, max and adaptive-average pooling, a residual sum and a concatenation, in float64."""
    x = torch.rand(2, 1, 6, 6, dtype=torch.float64)
    masks = torch.zeros(2, 1, 6, 6, dtype=torch.float64)
    masks[:, :, 1:5, 1:5] = 1
    wrapper = LossOfHeatmaps(tiny_net, masks, **kw)
    names = [n for n, _ in wrapper.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for _, p in wrapper.named_parameters())

    def f(*ps):
        return torch.func.functional_call(wrapper, dict(zip(names, ps, strict=True)), (x,))

    assert f(*params).item() > 0
    fast = bool(kw)  # full Jacobian check for the default rules, a random projection for the others
    assert torch.autograd.gradcheck(f, params, eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=fast)


def test_parameters_are_the_same_objects_and_optimizer_gets_heatmap_gradients(lib):
    net = lib.small_cnn()
    before = [id(p) for p in net.parameters()]
    state = {k: v.clone() for k, v in net.state_dict().items()}
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    model = isnet.ISNet(net, 3, "original")
    x = torch.rand(4, 1, 16, 16)
    masks = (torch.rand(4, 1, 16, 16) > 0.5).float()
    out = model(x, masks)  # no labels: heatmap loss only
    opt.zero_grad()
    out["heatmap_loss"].backward()
    assert [id(p) for p in net.parameters()] == before
    assert [id(p) for p in model.export().parameters()] == before
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads[:2])  # first conv receives heatmap gradients
    opt.step()
    changed = [k for k, v in net.state_dict().items() if not torch.equal(v, state[k]) and "running" not in k
               and "num_batches" not in k]
    assert "0.weight" in changed
    isnet.explain(net.eval(), x, 0)
    assert [id(p) for p in net.parameters()] == before
    assert not any(m._forward_hooks or m._backward_hooks or m._forward_pre_hooks for m in net.modules())


@pytest.mark.parametrize("variant", isnet.VARIANTS)
def test_variants_train_and_report_every_term(variant, lib):
    net = lib.small_cnn(classes=4)
    model = isnet.ISNet(net, 4, variant, C1=(1.0, 1.0) if variant == "dual" else 1.0,
                        C2=(25.0, 30.0) if variant == "dual" else 25.0)
    x = torch.rand(4, 1, 16, 16)
    masks = torch.zeros(4, 1, 16, 16)
    masks[:, :, 4:12, 4:12] = 1
    y = torch.tensor([0, 1, 2, 3])
    out = model(x, masks, y)
    for key in ("loss", "logits", "ce", "heatmap_loss", "background", "foreground", "nonfinite"):
        assert key in out, key
    assert out["logits"].shape == (4, 4)
    torch.testing.assert_close(out["loss"], 0.3 * out["ce"] + 0.7 * out["heatmap_loss"])
    out["loss"].backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())
    if variant == "dual":
        assert {"heatmap_loss_epsilon", "heatmap_loss_zplus"} <= set(out)


def test_original_heatmaps_match_explain(lib):
    net = lib.randomize_bn(lib.small_cnn()).double().eval()
    model = isnet.ISNet(net, 3, "original")
    x = torch.rand(2, 1, 16, 16, dtype=torch.float64)
    logits, maps = model.heatmaps(x)
    torch.testing.assert_close(maps["heatmap"][0], isnet.explain(net, x, "all"))
    torch.testing.assert_close(logits, net(x))


def test_grad_input_variant_is_gradient_times_input(lib):
    net = lib.randomize_bn(lib.small_cnn()).double().eval()
    model = isnet.ISNet(net, 3, "grad_input")
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    _, maps = model.heatmaps(x)
    (g,) = torch.autograd.grad(net(x)[:, 2].sum(), x)
    torch.testing.assert_close(maps["heatmap"][0][:, 2], (g * x).detach())


def test_lrp_deep_supervision_adds_layer_terms(lib):
    net = lib.small_cnn()
    model = isnet.ISNet(net, 3, "selective", lds_layers=["2", "6"])
    x = torch.rand(2, 1, 16, 16)
    masks = torch.zeros(2, 1, 16, 16)
    masks[:, :, 4:12, 4:12] = 1
    out = model(x, masks, torch.tensor([0, 1]))
    assert {"heatmap_loss_input", "heatmap_loss_2", "heatmap_loss_6"} <= set(out)
    out["loss"].backward()
    assert torch.isfinite(net[0].weight.grad).all()


def test_export_is_the_backbone_with_identical_outputs(lib):
    net = lib.small_cnn().eval()
    model = isnet.ISNet(net, 3, "stochastic")
    x = torch.rand(3, 1, 16, 16)
    assert model.export() is net
    assert torch.equal(model.export()(x), net(x))
    assert torch.equal(model(x), net(x))


def test_train_mode_batchnorm_uses_batch_statistics_and_updates_running_stats_once(lib):
    net = lib.small_cnn().train()
    bn = net[1]
    model = isnet.ISNet(net, 3, "selective")
    x = torch.rand(4, 1, 16, 16)
    masks = torch.ones(4, 1, 16, 16)
    masks[:, :, :2] = 0
    count = int(bn.num_batches_tracked)
    out = model(x, masks, torch.tensor([0, 1, 2, 0]))
    assert int(bn.num_batches_tracked) == count + 1  # one forward pass serves logits and heatmaps
    ref = net.eval()(x)
    assert not torch.allclose(out["logits"], ref)  # batch statistics, not running ones
    net.train()
    with pytest.warns(UserWarning, match="training mode"):
        isnet.explain(net, x, 0)


def test_differentiable_and_inference_paths_agree(lib):
    """The sweep without a graph (explain's default) equals the differentiable one."""
    net = lib.randomize_bn(lib.TinyNet()).double().eval()
    x = torch.rand(3, 1, 8, 8, dtype=torch.float64)
    fast = isnet.explain(net, x, "all")
    diff = isnet.explain(net, x, "all", create_graph=True)
    torch.testing.assert_close(fast, diff.detach(), rtol=1e-12, atol=1e-14)


def test_second_derivatives_of_a_heatmap_pass_gradgradcheck():
    """The hand-written factor backwards record a graph under create_graph (e.g. for a gradient
    penalty on the ISNet loss): z^B, epsilon after a ReLU, and epsilon without one."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Conv2d(2, 2, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2)).double().eval()
    x = torch.rand(1, 1, 4, 4, dtype=torch.float64)
    w0 = net[2].weight.detach().clone().requires_grad_(True)
    del net[2].weight

    def heat(w: torch.Tensor) -> torch.Tensor:
        net[2].weight = w
        return isnet.explain(net, x, 0, create_graph=True)

    assert torch.autograd.gradgradcheck(heat, (w0,))


def test_gradient_rule_is_input_gradient_in_eval_mode(tiny_net):
    x = torch.rand(2, 1, 6, 6, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(tiny_net(x)[:, 1].sum(), x)
    R = isnet.explain(tiny_net, x.detach(), 1, rule="gradient", input_rule="gradient")
    torch.testing.assert_close(R, (g * x).detach(), rtol=1e-10, atol=1e-12)


def test_map_chunks_give_the_same_maps(tiny_net):
    engine = isnet.LRPEngine(tiny_net)
    x = torch.rand(2, 1, 6, 6, dtype=torch.float64)
    m = torch.eye(3, dtype=torch.float64).view(3, 1, 3).expand(3, 2, 3)
    keep = [engine.node_for("conv3")]
    with torch.no_grad():
        _, acts = engine.forward(x)
        whole, kept_whole = engine.relevance(acts, m, keep=keep, chunk=3)
        parts, kept_parts = engine.relevance(acts, m, keep=keep, chunk=1)
    torch.testing.assert_close(whole, parts, rtol=0, atol=0)
    torch.testing.assert_close(kept_whole[keep[0]], kept_parts[keep[0]], rtol=0, atol=0)


@pytest.mark.parametrize("stride, padding, dilation, groups, size", [
    (1, 1, 1, 1, 7), (2, 1, 1, 1, 8), (2, 0, 1, 2, 9), (1, 2, 2, 1, 7), (3, 1, 1, 2, 10),
])
def test_conv_adjoint_is_the_transposed_convolution_with_exact_gradients(stride, padding, dilation, groups, size):
    from isnet.canonizers import ConvAdjoint

    gen = torch.Generator().manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, stride, padding, dilation, groups).double()
    x = torch.randn(2, 4, size, size, dtype=torch.float64, generator=gen)
    out_shape = conv(x).shape
    s = torch.randn(out_shape, dtype=torch.float64, generator=gen, requires_grad=True)
    w = conv.weight.detach().clone().requires_grad_(True)
    conf = ([stride] * 2, [padding] * 2, [dilation] * 2, groups)

    def ours(s, w):
        return ConvAdjoint.apply(s, w, tuple(x.shape), *conf)

    x_leaf = x.clone().requires_grad_(True)
    expected = torch.autograd.grad(nn.functional.conv2d(x_leaf, w.detach(), None, *conf), x_leaf, s.detach())[0]
    torch.testing.assert_close(ours(s, w), expected, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(ours, (s, w))
