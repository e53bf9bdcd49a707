"""Every rule against a slow matrix form of its definition (float64, small random layers).

How a rule is tested: its definition is written out here as an explicit ``[in, out]``
contribution matrix (``slow_<rule>``, listed in ``SLOW_FORMS`` under the rule's name), and
``test_<rule>_matches_matrix_form`` compares the engine's relevance with it on the layer
kinds of ``LAYERS`` the rule applies to. A rule of ``isnet.rules.RULES`` without a slow form
fails ``test_every_rule_has_a_slow_form``.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import isnet
from isnet import factors, outputs, rules, steps

EPS = 0.01


def dense(fn, in_shape):
    """Matrix ``W`` (out x in) and offset ``c`` of an affine ``fn`` on one sample of ``in_shape``."""
    n = int(torch.tensor(in_shape).prod())
    with torch.no_grad():
        c = fn(torch.zeros(1, *in_shape, dtype=torch.float64)).reshape(-1)
        cols = fn(torch.eye(n, dtype=torch.float64).view(n, *in_shape)).reshape(n, -1) - c
    return cols.T, c


def sign(z):
    return torch.where(z >= 0, 1.0, -1.0).to(z)


def slow_epsilon(W, b, a, R, eps):
    """``R_j = sum_k a_j w_kj R_k / (z_k + eps sign z_k)`` as an explicit contribution matrix."""
    z = W @ a + b
    contrib = a[:, None] * W.T * (R / (z + eps * sign(z)))[None, :]  # [in, out]
    return contrib.sum(1)


def slow_zbox(W, a, R, low, high, eps):
    Wp, Wn = W.clamp(min=0), W.clamp(max=0)
    num = a[:, None] * W.T - low[:, None] * Wp.T - high[:, None] * Wn.T  # [in, out]
    zb = num.sum(0)
    return (num * (R / (zb + eps * sign(zb)))[None, :]).sum(1)


def slow_zplus(W, a, R, eps):
    num = a[:, None] * W.clamp(min=0).T
    zp = num.sum(0)
    return (num * (R / (zp + eps * sign(zp)))[None, :]).sum(1)


def slow_gradient(W, a, m):
    """Gradient x input of ``sum_k m_k y_k``: ``R_j = a_j sum_k w_kj m_k`` (no denominator)."""
    contrib = a[:, None] * W.T * m[None, :]  # [in, out]
    return contrib.sum(1)


SLOW_FORMS = {"epsilon": slow_epsilon, "zb": slow_zbox, "zplus": slow_zplus, "gradient": slow_gradient}


def test_every_rule_has_a_slow_form():
    assert set(rules.RULES) == set(SLOW_FORMS)


def lrp(model, x, m, rule="epsilon", input_rule="epsilon", bounds=(0.0, 1.0)):
    """Relevance of ``x`` for output relevance ``R = y * m`` through our engine."""
    engine = isnet.LRPEngine(model)
    with torch.no_grad():
        y, acts = engine.forward(x)
        R, _ = engine.relevance(acts, m.unsqueeze(0), rule, input_rule, EPS, bounds)
    return y, R[0]


LAYERS = {
    "linear": (lambda: nn.Linear(6, 4), (6,)),
    "conv": (lambda: nn.Conv2d(2, 3, 3, padding=1), (2, 4, 4)),
    "conv_strided": (lambda: nn.Conv2d(2, 3, 3, stride=2, padding=1), (2, 5, 5)),
    "conv_grouped": (lambda: nn.Conv2d(4, 4, 3, padding=1, groups=2), (4, 3, 3)),
    "conv_bn": (lambda: nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3)), (2, 4, 4)),
    "bn_conv": (lambda: nn.Sequential(nn.BatchNorm2d(2), nn.Conv2d(2, 3, 3, padding=1)), (2, 4, 4)),
    "bn_conv_bn": (lambda: nn.Sequential(nn.BatchNorm2d(2), nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3)),
                   (2, 4, 4)),
    "linear_bn": (lambda: nn.Sequential(nn.Linear(6, 4), nn.BatchNorm1d(4)), (6,)),
    "bn_alone": (lambda: nn.BatchNorm2d(3), (3, 2, 2)),
    "avgpool": (lambda: nn.AvgPool2d(2), (2, 4, 4)),
    "avgpool_padded": (lambda: nn.AvgPool2d(3, stride=2, padding=1), (2, 5, 5)),
    "adaptive_avgpool": (lambda: nn.AdaptiveAvgPool2d((2, 3)), (2, 5, 6)),
    "global_avgpool": (lambda: nn.AdaptiveAvgPool2d(1), (2, 3, 3)),
}


def _build(name, lib):
    make, shape = LAYERS[name]
    model = lib.randomize_bn(make()).double().eval()
    return model, shape


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_epsilon_matches_matrix_form(name, lib):
    model, shape = _build(name, lib)
    x = torch.randn(2, *shape, dtype=torch.float64)
    y = model(x)
    m = torch.randn_like(y)
    _, R = lrp(model, x, m)
    W, c = dense(model, shape)
    for b in range(2):
        ref = slow_epsilon(W, c, x[b].reshape(-1), (y[b] * m[b]).reshape(-1), EPS)
        torch.testing.assert_close(R[b].reshape(-1), ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["linear", "conv", "conv_strided", "conv_bn", "bn_conv", "linear_bn"])
@pytest.mark.parametrize("bounds", [(0.0, 1.0), (-0.5, 2.0)])
def test_zbox_matches_matrix_form(name, bounds, lib):
    model, shape = _build(name, lib)
    x = torch.rand(2, *shape, dtype=torch.float64) * (bounds[1] - bounds[0]) + bounds[0]
    y = model(x)
    m = torch.randn_like(y)
    _, R = lrp(model, x, m, input_rule="zb", bounds=bounds)
    W, _ = dense(model, shape)
    low = torch.full((W.shape[1],), bounds[0], dtype=torch.float64)
    high = torch.full((W.shape[1],), bounds[1], dtype=torch.float64)
    for b in range(2):
        ref = slow_zbox(W, x[b].reshape(-1), (y[b] * m[b]).reshape(-1), low, high, EPS)
        torch.testing.assert_close(R[b].reshape(-1), ref, rtol=1e-10, atol=1e-12)


def test_zbox_per_channel_bounds(lib):
    model = nn.Conv2d(2, 3, 3, padding=1).double()
    lo, hi = torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 2.0])
    x = torch.rand(1, 2, 4, 4, dtype=torch.float64) * (hi - lo).view(1, 2, 1, 1) + lo.view(1, 2, 1, 1)
    y = model(x)
    m = torch.randn_like(y)
    _, R = lrp(model, x, m, input_rule="zb", bounds=(lo, hi))
    W, _ = dense(model, (2, 4, 4))
    low = lo.double().view(2, 1, 1).expand(2, 4, 4).reshape(-1)
    high = hi.double().view(2, 1, 1).expand(2, 4, 4).reshape(-1)
    ref = slow_zbox(W, x[0].reshape(-1), (y[0] * m[0]).reshape(-1), low, high, EPS)
    torch.testing.assert_close(R[0].reshape(-1), ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["linear", "conv", "conv_bn", "bn_conv", "conv_grouped"])
def test_zplus_matches_matrix_form(name, lib):
    model, shape = _build(name, lib)
    x = torch.rand(2, *shape, dtype=torch.float64)  # non-negative, as after a ReLU
    y = model(x)
    m = torch.randn_like(y)
    _, R = lrp(model, x, m, rule="zplus", input_rule="zplus")
    W, _ = dense(model, shape)
    for b in range(2):
        ref = slow_zplus(W, x[b].reshape(-1), (y[b] * m[b]).reshape(-1), EPS)
        torch.testing.assert_close(R[b].reshape(-1), ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_gradient_matches_matrix_form(name, lib):
    model, shape = _build(name, lib)
    x = torch.randn(2, *shape, dtype=torch.float64)
    m = torch.randn_like(model(x))
    _, R = lrp(model, x, m, rule="gradient", input_rule="gradient")
    W, _ = dense(model, shape)
    for b in range(2):
        ref = slow_gradient(W, x[b].reshape(-1), m[b].reshape(-1))
        torch.testing.assert_close(R[b].reshape(-1), ref, rtol=1e-10, atol=1e-12)


def test_zplus_with_negative_inputs_pairs_negative_weights():
    W = torch.randn(3, 5, dtype=torch.float64)
    a = torch.randn(5, dtype=torch.float64)
    R = torch.randn(3, dtype=torch.float64)
    lin = nn.Linear(5, 3, bias=False).double()
    with torch.no_grad():
        lin.weight.copy_(W)
    _, out = lrp(lin, a.view(1, 5), (R / lin(a.view(1, 5))[0]).view(1, 3), rule="zplus", input_rule="zplus")
    ap, an = a.clamp(min=0), a.clamp(max=0)
    zp = W.clamp(min=0) @ ap + W.clamp(max=0) @ an
    s = R / (zp + EPS * sign(zp))
    ref = ap * (W.clamp(min=0).T @ s) + an * (W.clamp(max=0).T @ s)
    torch.testing.assert_close(out[0], ref, rtol=1e-10, atol=1e-12)


def test_relu_passes_relevance_and_maxpool_is_winner_take_all():
    model = nn.Sequential(nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1)).double()
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64)
    y = model(x)
    m = torch.randn_like(y)
    _, R = lrp(model, x, m)
    a = torch.relu(x)
    ref = torch.zeros_like(x)
    for c in range(2):
        padded = torch.nn.functional.pad(a[0, c], (1, 1, 1, 1), value=float("-inf"))
        for i in range(y.shape[2]):
            for j in range(y.shape[3]):
                win = padded[2 * i:2 * i + 3, 2 * j:2 * j + 3]
                k = int(win.argmax())
                ref[0, c, 2 * i + k // 3 - 1, 2 * j + k % 3 - 1] += y[0, c, i, j] * m[0, c, i, j]
    torch.testing.assert_close(R, ref, rtol=1e-12, atol=1e-12)


class TwoBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 3)
        self.b = nn.Linear(4, 3)

    def forward(self, x):
        return torch.cat([self.a(x) + self.b(x), self.a(x) - 0.5 * self.b(x)], 1) * 2.0


def test_sum_cat_and_scaling_follow_epsilon_rule():
    model = TwoBranch().double()
    x = torch.randn(1, 4, dtype=torch.float64)
    y = model(x)
    m = torch.randn_like(y)
    _, R = lrp(model, x, m)
    # slow form, node by node
    A, Bv = model.a(x)[0], model.b(x)[0]
    R_out = (y * m)[0]
    st = lambda z: z + EPS * sign(z)  # noqa: E731
    R_scaled = (y[0] / 2.0) * 2.0 * R_out / st(y[0])  # scaling by 2: epsilon with weight 2
    s1 = R_scaled[:3] / st(A + Bv)
    s2 = R_scaled[3:] / st(A - 0.5 * Bv)
    RA = A * s1 + A * s2
    R_half = -(0.5 * Bv) * s2  # relevance of the node 0.5 * b, which is itself an epsilon "layer"
    RB = Bv * s1 + Bv * 0.5 * R_half / st(0.5 * Bv)
    Wa, ca = dense(model.a, (4,))
    Wb, cb = dense(model.b, (4,))
    ref = slow_epsilon(Wa, ca, x[0], RA, EPS) + slow_epsilon(Wb, cb, x[0], RB, EPS)
    torch.testing.assert_close(R[0], ref, rtol=1e-10, atol=1e-12)


def test_stabilizer_sign_of_zero_is_positive():
    z = torch.tensor([0.0, -0.0, 2.0, -3.0], dtype=torch.float64)
    assert factors.stabilize(z, 0.5).tolist() == [0.5, 0.5, 2.5, -3.5]


def test_selective_output_is_gradient_of_eta_times_logits():
    y = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    c = torch.tensor([0, 3, 4, 1])
    p = torch.softmax(y, 1).gather(1, c.view(-1, 1))
    eta = torch.log(p / (1 - p)).sum()
    (grad,) = torch.autograd.grad(eta, y)
    torch.testing.assert_close(outputs.selective_output(y.detach(), c)[0], grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("nonneg", [True, False])
def test_self_ratio_matches_autograd_of_its_formula(nonneg):
    z = torch.randn(3, 4, 5, dtype=torch.float64)
    z[0, 0, :2] = 0.0  # sign(0) = +1
    z = z.relu() if nonneg else z
    z.requires_grad_(True)
    g = torch.randn_like(z)
    f = factors.SelfRatio.apply(z, EPS, nonneg)
    ref = z / factors.stabilize(z, EPS)
    torch.testing.assert_close(f, ref, rtol=1e-15, atol=0)
    (got,) = torch.autograd.grad(f, z, g)
    (want,) = torch.autograd.grad(ref, z, g)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    zd = z.detach()
    away = torch.where(zd >= 0, zd + 0.5, zd - 0.5).requires_grad_(True)  # no finite step across the jump at 0
    assert torch.autograd.gradcheck(lambda t: factors.SelfRatio.apply(t, EPS, nonneg), (away,))
    assert torch.autograd.gradgradcheck(lambda t: factors.SelfRatio.apply(t, EPS, nonneg), (away,))


def test_ratio_matches_autograd_of_its_formula():
    v = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    d = torch.randn(2, 3, 4, dtype=torch.float64)
    away = torch.where(d >= 0, d + 0.5, d - 0.5).requires_grad_(True)  # no finite step across the jump at 0
    assert torch.autograd.gradcheck(lambda a, b: factors.ratio(a, b, EPS), (v, away))
    assert torch.autograd.gradgradcheck(lambda a, b: factors.ratio(a, b, EPS), (v, away))
    d[0, 0, 0] = 0.0  # sign(0) = +1
    d.requires_grad_(True)
    g = torch.randn_like(v)
    got = torch.autograd.grad(factors.ratio(v, d, EPS), (v, d), g)
    want = torch.autograd.grad(v / factors.stabilize(d, EPS), (v, d), g)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                dict(kernel_size=3, stride=2, ceil_mode=True)])
def test_maxpool_rule_for_several_maps_is_scatter_of_each_map(kw):
    """K maps at once equal K single maps; each is the scatter of the window relevance to its arg-max."""
    a = torch.randn(2, 3, 7, 7, dtype=torch.float64)
    pooled, idx = torch.nn.functional.max_pool2d(a, return_indices=True, **kw)
    g = torch.randn(4, *pooled.shape, dtype=torch.float64, requires_grad=True)
    out = steps.maxpool_rule(g, a, idx, kw)
    for k in range(4):
        ref = torch.zeros(2, 3, 49, dtype=torch.float64)
        ref.scatter_add_(2, idx.flatten(2), g[k].detach().flatten(2))
        torch.testing.assert_close(out[k], ref.view_as(a), rtol=0, atol=1e-15)
    assert torch.autograd.gradcheck(lambda t: steps.maxpool_rule(t, a, idx, kw), (g,))
