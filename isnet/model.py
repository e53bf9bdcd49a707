"""``ISNet``: a classifier trained with the heatmap loss, in the original and Faster-ISNet variants
(docs/isnet.md, sections 2, 4 and 5).

At test time only the backbone runs: ``export()`` returns it unchanged (same parameter
objects, no hooks), so inference costs exactly what the plain classifier costs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import DEFAULT_LOSS, DEFAULT_LRP, LossConfig, check_fraction
from .engine import engine_for
from .loss import gwrp, heatmap_loss_terms, total_loss
from .outputs import onehot_output, selective_output

VARIANTS = ("original", "dual", "selective", "stochastic", "grad_input")
SELECTIVE_CLASSES = ("lowest", "label", "predicted")


class ISNet(nn.Module):
    """Wrap ``backbone`` (images in ``[0, 1]`` -> logits) for ISNet training.

    variant: ``original`` (K epsilon maps, one per logit), ``dual`` (an epsilon and a z+ map
    of the whole logit vector, separate C1/C2 per rule), ``selective`` (one map from the
    class-selective softmax output rule for class ``selective_class``), ``stochastic`` (one
    map: the top logit with probability 1/2, else a random other class), ``grad_input``
    (the ablation: input-gradient x input maps of every logit, computed by the same batched
    sweep; BatchNorm statistics are held constant as in the LRP maps, so in train mode this is
    the gradient of the network with this batch's BN affine maps frozen, in eval mode the
    exact input gradient).
    ``loss``: the loss constants (:class:`~isnet.config.LossConfig`, checked when built);
    ``loss_fields``: constants given one by one (``P=0.5``) replace those of ``loss``, and
    ``C1``/``C2`` may there be ``(epsilon, zplus)`` pairs for ``dual`` (one per map group).
    ``lds_layers``: module names whose output relevance (summed over channels) is also
    penalised (LRP deep supervision); the per-layer losses are combined by GWRP with ``lds_d``
    (default ``d``).
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        variant: str = "original",
        *,
        loss: LossConfig = DEFAULT_LOSS,
        epsilon: float = DEFAULT_LRP.epsilon,
        input_rule: str = DEFAULT_LRP.input_rule,
        bounds: tuple[float | Tensor, float | Tensor] = DEFAULT_LRP.bounds,
        selective_class: str = "lowest",
        lds_layers: Sequence[str] = (),
        lds_d: float | None = None,
        **loss_fields: float | Sequence[float],
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if selective_class not in SELECTIVE_CLASSES:
            raise ValueError(f"selective_class must be one of {SELECTIVE_CLASSES}, got {selective_class!r}")
        if lds_layers and variant == "grad_input":
            raise ValueError("LRP deep supervision needs an LRP variant, not grad_input")
        self.backbone = backbone
        self.num_classes = num_classes
        self.variant = variant
        self.epsilon, self.input_rule, self.bounds = epsilon, input_rule, bounds
        self.selective_class = selective_class
        self.lds_layers = tuple(lds_layers)
        C1, C2 = loss_fields.pop("C1", loss.C1), loss_fields.pop("C2", loss.C2)
        shared = loss.replace(**loss_fields)
        self.lds_d = shared.d if lds_d is None else lds_d
        check_fraction("lds_d", self.lds_d)
        #: the loss constants of each map group (they differ in C1 / C2 only)
        self.losses: dict[str, LossConfig] = dict.fromkeys(self.map_names(), shared)
        self.set_constants(C1, C2)

    # ------------------------------------------------------------------ configuration
    def map_names(self) -> tuple[str, ...]:
        """Names of the heatmap groups this variant produces."""
        return ("epsilon", "zplus") if self.variant == "dual" else ("heatmap",)

    @property
    def loss(self) -> LossConfig:
        """The loss constants (those of the first map group: P, d, E, w1, w2 are shared)."""
        return next(iter(self.losses.values()))

    @property
    def constants(self) -> dict[str, tuple[float, float]]:
        """``(C1, C2)`` of each map group."""
        return {name: (config.C1, config.C2) for name, config in self.losses.items()}

    def set_constants(self, C1: float | Sequence[float], C2: float | Sequence[float]) -> None:
        """Set C1/C2 (a pair per map group for ``dual``); checked as any :class:`LossConfig`."""
        names = self.map_names()
        c1 = list(C1) if isinstance(C1, (list, tuple)) else [C1] * len(names)
        c2 = list(C2) if isinstance(C2, (list, tuple)) else [C2] * len(names)
        if len(c1) != len(names) or len(c2) != len(names):
            raise ValueError(f"{self.variant}: give one C1/C2 per map group {names}")
        self.losses = {n: self.losses[n].replace(C1=float(a), C2=float(b))
                       for n, a, b in zip(names, c1, c2, strict=True)}

    def export(self) -> nn.Module:
        """The plain classifier used at test time (the backbone itself, weights shared)."""
        return self.backbone

    # ------------------------------------------------------------------ heatmaps
    def _classes(self, logits: Tensor, labels: Tensor | None) -> Tensor:
        if self.variant == "stochastic":
            top = logits.argmax(1)
            k = logits.shape[1]
            other = (top + torch.randint(1, k, top.shape, device=top.device)) % k
            keep = torch.rand(top.shape, device=top.device) < 0.5
            return torch.where(keep, top, other)
        if self.selective_class == "label":
            if labels is None:
                raise ValueError("selective_class='label' needs labels")
            return labels
        return logits.argmax(1) if self.selective_class == "predicted" else logits.argmin(1)

    def heatmaps(self, x: Tensor, labels: Tensor | None = None,
                 create_graph: bool = True) -> tuple[Tensor, dict[str, list[Tensor]]]:
        """Logits and, per map group, ``[input map, *hidden maps]`` each ``[B, K, C, H, W]``.

        One forward pass serves both. With grad mode on and ``create_graph`` the maps are
        differentiable (the second-order path of the ISNet loss); with ``create_graph=False``
        only the logits keep their graph (e.g. to calibrate C1/C2 while training on CE).
        """
        engine = engine_for(self.backbone)
        logits, acts = engine.forward(x)
        with torch.set_grad_enabled(create_graph and torch.is_grad_enabled()):
            return logits, self._lrp_maps(engine, logits, acts, labels)

    def _lrp_maps(self, engine, logits: Tensor, acts: dict[str, Tensor],
                  labels: Tensor | None) -> dict[str, list[Tensor]]:
        keep = [engine.node_for(name) for name in self.lds_layers]
        b, k = logits.shape
        groups: dict[str, tuple[str, Tensor]] = {}
        if self.variant in ("original", "grad_input"):
            idx = torch.arange(k, device=logits.device).view(k, 1).expand(k, b)
            groups["heatmap"] = ("gradient" if self.variant == "grad_input" else "epsilon", onehot_output(logits, idx))
        elif self.variant == "dual":
            ones = torch.ones_like(logits).unsqueeze(0)
            groups["epsilon"] = ("epsilon", ones)
            groups["zplus"] = ("zplus", ones)
        elif self.variant == "selective":
            groups["heatmap"] = ("epsilon", selective_output(logits, self._classes(logits, labels)))
        else:
            groups["heatmap"] = ("epsilon", onehot_output(logits, self._classes(logits, labels).view(1, b)))
        maps: dict[str, list[Tensor]] = {}
        for name, (rule, grad_out) in groups.items():
            input_rule = "gradient" if rule == "gradient" else self.input_rule
            R, kept = engine.relevance(acts, grad_out, rule, input_rule, self.epsilon, self.bounds, keep)
            hidden = [kept[n].sum(2, keepdim=True).transpose(0, 1) for n in keep]
            maps[name] = [R.transpose(0, 1), *hidden]
        return maps

    # ------------------------------------------------------------------ training forward
    def forward(self, x: Tensor, masks: Tensor | None = None, labels: Tensor | None = None,
                create_graph: bool = True):
        """Without ``masks``: the backbone's logits. With ``masks`` (``[B, 1, H, W]``): a dict
        with ``logits``, ``heatmap_loss`` and its ``background`` / ``foreground`` terms (per
        group for ``dual``, per layer with LDS), ``nonfinite`` and, when ``labels`` are given,
        ``ce`` and the total ``loss = (1 - P) * ce + P * heatmap_loss``. ``create_graph=False``
        evaluates the same loss without the second-order graph (validation: cheaper, and
        the heatmap term then carries no gradient).
        """
        if masks is None:
            return self.backbone(x)
        logits, maps = self.heatmaps(x, labels, create_graph=create_graph)
        out: dict[str, Tensor] = {"logits": logits}
        group_losses, bgs, fgs, bad = [], [], [], 0
        for name, layer_maps in maps.items():
            config = self.losses[name]
            layer_losses = []
            for i, h in enumerate(layer_maps):
                t = heatmap_loss_terms(h, masks, config)
                layer_losses.append(t.loss)
                bad += t.nonfinite
                if i == 0:
                    bgs.append(t.background)
                    fgs.append(t.foreground)
                if len(layer_maps) > 1:
                    tag = "input" if i == 0 else self.lds_layers[i - 1]
                    out[f"heatmap_loss_{name}_{tag}" if len(maps) > 1 else f"heatmap_loss_{tag}"] = t.loss.detach()
            lh = layer_losses[0] if len(layer_losses) == 1 else gwrp(torch.stack(layer_losses), self.lds_d)
            if len(maps) > 1:
                out[f"heatmap_loss_{name}"] = lh.detach()
            group_losses.append(lh)
        out["heatmap_loss"] = torch.stack(group_losses).mean()
        out["background"] = torch.stack(bgs).mean().detach()
        out["foreground"] = torch.stack(fgs).mean().detach()
        out["nonfinite"] = torch.tensor(float(bad))
        if labels is not None:
            out["ce"] = F.cross_entropy(logits.detach(), labels)
            out["loss"] = total_loss(logits, labels, out["heatmap_loss"], self.loss.P)
        return out
