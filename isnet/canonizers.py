"""BatchNorm fusion: a convolution or linear layer and its neighbouring BatchNorm(s) as one affine map.

Nothing is modified in place: the fused weight is recomputed, differentiably, from the
live parameters at every explanation, so gradients reach the convolution weight and the
BatchNorm scale alike. BatchNorm statistics are treated as constants of the LRP path:
running statistics in eval mode, *detached* batch statistics in train mode (the choice of
the ISNet authors' code, docs/isnet.md, section 3).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BatchNorm = nn.modules.batchnorm._BatchNorm

def bn_scale_shift(bn: BatchNorm, bn_input: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel ``(scale, shift)`` such that ``bn(x) = scale * x + shift`` in this forward pass."""
    use_batch = bn.training or bn.running_var is None
    if use_batch:
        with torch.no_grad():  # two-pass form: Tensor.var over (0, 2, 3) is slow on CPU
            dims = [0, *range(2, bn_input.ndim)]
            mean = bn_input.mean(dims)
            var = (bn_input - _channel_view(mean, bn_input.ndim)).square_().mean(dims)
    else:
        mean, var = bn.running_mean, bn.running_var
    inv = torch.rsqrt(var + bn.eps)
    scale = inv if bn.weight is None else bn.weight * inv
    shift = -mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return scale, shift


def _channel_view(v: Tensor, ndim: int, dim: int = 1) -> Tensor:
    shape = [1] * ndim
    shape[dim] = -1
    return v.view(shape)


@dataclass
class AffineChain:
    """``[pre BN] -> op -> [post BN]`` with ``op`` a Conv2d / Linear, or a lone BatchNorm (``op=None``).

    Node names tell where the inputs of each BatchNorm live in the activation dict.
    """

    op: nn.Conv2d | nn.Linear | None
    pre: BatchNorm | None = None
    post: BatchNorm | None = None
    pre_input: str | None = None
    post_input: str | None = None

    @property
    def kind(self) -> str:
        if self.op is None:
            return "diag"
        return "conv" if isinstance(self.op, nn.Conv2d) else "linear"

    def fused(self, acts: dict[str, Tensor]) -> tuple[Tensor, Tensor | None]:
        """The fused weight and, when it is a per-channel constant, the fused bias.

        ``diag``: weight is the per-channel scale. With a BatchNorm *before* a padded
        convolution the bias is not constant at the borders, so ``None`` is returned.
        """
        if self.op is None:
            bn = self.pre or self.post
            name = self.pre_input if self.pre is not None else self.post_input
            return bn_scale_shift(bn, acts[name])
        w = self.op.weight
        bias = self.op.bias
        if self.pre is not None:
            s_pre, _ = bn_scale_shift(self.pre, acts[self.pre_input])
            if isinstance(self.op, nn.Conv2d):
                groups = self.op.groups
                out_c, in_per_group = w.shape[:2]
                s = s_pre.view(groups, 1, in_per_group).expand(groups, out_c // groups, in_per_group)
                w = w * s.reshape(out_c, in_per_group, 1, 1)
            else:
                w = w * s_pre.view(1, -1)
            bias = None
        if self.post is not None:
            s_post, t_post = bn_scale_shift(self.post, acts[self.post_input])
            w = w * _channel_view(s_post, w.ndim, 0)
            if self.pre is None:
                bias = t_post if bias is None else bias * s_post + t_post
        elif self.pre is None and bias is None:
            bias = torch.zeros(w.shape[0], dtype=w.dtype, device=w.device)
        return w, bias

    # -- the linear map (no bias) and its adjoint, with an optional leading map axis
    def forward_fn(self, a: Tensor, w: Tensor) -> Tensor:
        """``W a`` without bias for ``a`` of shape ``[B, ...]`` (or ``[1, ...]`` bounds)."""
        if self.op is None:
            return a * _channel_view(w, a.ndim)
        if isinstance(self.op, nn.Conv2d):
            c = self.op
            return F.conv2d(a, w, None, c.stride, conv_padding(c), c.dilation, c.groups)
        return F.linear(a, w)

    def adjoint_fn(self, in_shape: torch.Size) -> Callable[[Tensor, Tensor], Tensor]:
        """``s -> W^T s`` for ``s`` of shape ``[K, B, *out]``, producing ``[K, B, *in_shape[1:]]``."""
        op = self.op

        def adj(s: Tensor, w: Tensor) -> Tensor:
            if op is None:
                return s * _channel_view(w, s.ndim, 2)
            if isinstance(op, nn.Linear):
                return s.matmul(w)
            k, b = s.shape[:2]
            flat = s.reshape(k * b, *s.shape[2:])
            shape = (k * b, w.shape[1] * op.groups, *in_shape[2:])
            g = ConvAdjoint.apply(flat, w, shape, list(op.stride), list(conv_padding(op)), list(op.dilation),
                                  op.groups)
            return g.view(k, b, *g.shape[1:])

        adj.groups = op.groups if isinstance(op, nn.Conv2d) else 1  # type: ignore[attr-defined]
        return adj


class ConvAdjoint(torch.autograd.Function):
    """``W^T s`` of a Conv2d (the transposed convolution), differentiable in ``s`` and ``W``.

    Forward: the convolution's own input-gradient kernel. Backward: a plain convolution for
    the gradient of ``s`` and the weight-gradient kernel for that of ``W``. Autograd's own
    routes (``conv_transpose2d``, or the double backward of the input-gradient kernel)
    compute the same values through slower kernels on the CPU.
    """

    @staticmethod
    def forward(ctx, s: Tensor, w: Tensor, in_shape: tuple[int, ...], stride: list[int], padding: list[int],
                dilation: list[int], groups: int) -> Tensor:
        ctx.save_for_backward(s, w)
        ctx.conf = (stride, padding, dilation, groups)
        shape_only = s.new_empty(in_shape)  # read for its shape only (an expanded one would be copied)
        return torch.ops.aten.convolution_backward(
            s, shape_only, w, None, stride, padding, dilation, False, [0, 0], groups, [True, False, False])[0]

    @staticmethod
    def backward(ctx, grad: Tensor):
        s, w = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conf
        grad_s = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_s = F.conv2d(grad, w, None, stride, padding, dilation, groups)
        if ctx.needs_input_grad[1]:
            grad_w = torch.ops.aten.convolution_backward(
                s, grad, w, None, stride, padding, dilation, False, [0, 0], groups, [False, True, False])[1]
        return grad_s, grad_w, None, None, None, None, None


def conv_padding(conv: nn.Conv2d) -> tuple[int, int]:
    """Numeric padding of a zero-padded Conv2d (``'same'`` resolved for odd kernels)."""
    if isinstance(conv.padding, str):
        if conv.padding == "valid":
            return (0, 0)
        total = [d * (k - 1) for d, k in zip(conv.dilation, conv.kernel_size, strict=True)]
        if any(t % 2 for t in total):
            raise NotImplementedError("padding='same' with an even kernel (asymmetric padding)")
        return (total[0] // 2, total[1] // 2)
    return tuple(conv.padding)  # type: ignore[return-value]
