"""The claims of the ISNet paper, each decided by the measured numbers and tests.

Nothing here is hard-coded to an outcome: every verdict follows from a stated rule applied
to the analysis. Verdicts:

* ``holds`` - the numbers support the claim by its rule;
* ``does not hold`` - the numbers contradict it (a point estimate on the wrong side, or a
  difference outside the equivalence margin);
* ``inconclusive`` - the point estimates agree with the claim but the test does not show it
  (too few seeds or images to tell), or both sides of a comparison are at chance (one rule
  for every claim that compares accuracies: :data:`CHANCE_RULE`);
* ``not measured`` - the runs needed are absent (no ISNet, no baseline, no shifted split,
  no explanation scores, timings from different devices).

A claim's overall verdict: ``not measured`` when no experiment measured it, ``does not hold``
when any experiment contradicts it, ``holds`` when every measuring experiment supports it,
``inconclusive`` otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import pandas as pd

from benchmarks.evaluation.catalogue import PRIMARY
from benchmarks.evaluation.explanation import FAITHFULNESS_RULE
from benchmarks.report.analysis import Analysis
from benchmarks.report.behaviour_estimates import HEADLINE_RULE, measure_name
from benchmarks.report.chance import CHANCE_RULE, DEGENERATE_SHARE, LEARNING_RULE, at_chance, degenerate, did_not_learn
from benchmarks.report.comparisons import ESTIMATOR
from benchmarks.report.estimates import ALPHA, LEVEL
from benchmarks.report.explanation_estimates import CLAIM_EXPLAINER, faithful
from benchmarks.report.roles import MethodRoles

HOLDS, FAILS, UNCLEAR, NOT_MEASURED = "holds", "does not hold", "inconclusive", "not measured"
NO_REFERENCE = "no runs of a reference method (role `reference` in the records)"
#: largest accuracy difference (absolute, 0-1) still counted as "the same" for claim 1
EQUIVALENCE_MARGIN = 0.02
#: largest relative excess of ISNet's inference time over the standard classifier's still
#: counted as "no extra cost" (timings of the same device are noisy)
TIME_TOLERANCE = 0.25
#: the test splits where the shortcut misleads, on which ISNet should beat the others
CLAIM_SPLITS = ("deceiving", "external")
SMOKE_NOTE = ("smoke profile: a plumbing check of a few training steps, not evidence; its verdicts say only that the "
              "pipeline runs")


@dataclass(frozen=True)
class Finding:
    experiment: str
    profile: str
    verdict: str
    evidence: str


@dataclass
class Claim:
    number: int
    statement: str
    rule: str
    findings: list[Finding] = field(default_factory=list)
    note: str = ""

    @property
    def verdict(self) -> str:
        measured = [f.verdict for f in self.findings if f.verdict != NOT_MEASURED]
        if not measured:
            return NOT_MEASURED
        if FAILS in measured:
            return FAILS
        if all(v == HOLDS for v in measured):
            return HOLDS
        return UNCLEAR


def _pp(x: float) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{100 * x:+.1f}"


def _p(x: float) -> str:
    return "n/a" if x is None or math.isnan(x) else ("<0.001" if x < 0.001 else f"{x:.3f}")


def _keys(analysis: Analysis) -> list[tuple[str, str]]:
    """The experiments that are evidence for the claims (no-shortcut controls are not)."""
    return sorted(k for k, r in analysis.roles.items() if not r.control)


REFERENCE_DID_NOT_LEARN = "ISNet did not learn this experiment (at chance on its in-distribution test split)"


def _judged(analysis: Analysis, claim: Claim,
            keys: list[tuple[str, str]] | None = None) -> Iterator[tuple[tuple[str, str], MethodRoles]]:
    """The experiments (``keys``, default :func:`_keys`) where ISNet ran and learnt, with their
    cast; the others get their "not measured" finding in ``claim``."""
    for key in _keys(analysis) if keys is None else keys:
        cast = analysis.cast[key]
        if cast.reference is None:
            claim.findings.append(Finding(*key, NOT_MEASURED, NO_REFERENCE))
        elif did_not_learn(analysis, key, cast.reference):
            claim.findings.append(Finding(*key, NOT_MEASURED, REFERENCE_DID_NOT_LEARN))
        else:
            yield key, cast


def _learners(analysis: Analysis, key: tuple[str, str], methods: list[str]) -> tuple[list[str], list[str]]:
    """``methods`` split into those that learnt the experiment and those that did not
    (:data:`~benchmarks.report.chance.LEARNING_RULE`)."""
    unlearnt = [m for m in methods if did_not_learn(analysis, key, m)]
    return [m for m in methods if m not in unlearnt], unlearnt


def _unlearnt_text(unlearnt: list[str]) -> str:
    return ("; left out, did not learn: " + ", ".join(f"`{m}`" for m in unlearnt)) if unlearnt else ""


def _both_at_chance(analysis: Analysis, key: tuple[str, str], a: tuple[str, str], b: tuple[str, str]) -> bool:
    """Whether both sides, each (method, split), are at chance."""
    return at_chance(analysis, key, *a) and at_chance(analysis, key, *b)


# -------------------------------------------------------------------------------- claim 1
def claim_same_accuracy(analysis: Analysis) -> Claim:
    claim = Claim(
        1, "ISNet's accuracy is the same with or without the background bias.",
        f"For each experiment with a synthetic bias, ISNet's in-distribution (biased) accuracy minus its accuracy on "
        f"every shifted split (unbiased, deceiving): holds when every {LEVEL:.0%} bootstrap interval over test images "
        f"of the gap lies within ±{100 * EQUIVALENCE_MARGIN:.0f} percentage points (equivalence), does not hold when "
        f"one lies entirely outside that margin, inconclusive otherwise. {CHANCE_RULE} {LEARNING_RULE} Real-data "
        "experiments are not used: their external test also changes hospital, scanner and population, not only "
        "the bias.",
    )
    gaps = analysis.gaps
    for key in _keys(analysis):
        roles = analysis.roles[key]
        if not roles.synthetic_bias:
            continue
        reference = analysis.cast[key].reference
        if reference is None:
            claim.findings.append(Finding(*key, NOT_MEASURED, NO_REFERENCE))
            continue
        if did_not_learn(analysis, key, reference):
            claim.findings.append(Finding(*key, NOT_MEASURED, REFERENCE_DID_NOT_LEARN))
            continue
        g = gaps[(gaps["experiment"] == key[0]) & (gaps["profile"] == key[1]) & (gaps["method"] == reference)] \
            if not gaps.empty else gaps
        if g.empty:
            claim.findings.append(Finding(*key, NOT_MEASURED, "no in-distribution / shifted split pair"))
            continue
        states, parts = [], []
        for r in g.itertuples(index=False):
            low, high = r.boot_low, r.boot_high
            chance = _both_at_chance(analysis, key, (reference, r.minuend), (reference, r.subtrahend))
            if math.isnan(low):
                states.append(NOT_MEASURED)
            elif chance:
                states.append(UNCLEAR)
            elif -EQUIVALENCE_MARGIN <= low and high <= EQUIVALENCE_MARGIN:
                states.append(HOLDS)
            elif low > EQUIVALENCE_MARGIN or high < -EQUIVALENCE_MARGIN:
                states.append(FAILS)
            else:
                states.append(UNCLEAR)
            parts.append(f"{r.minuend} − {r.subtrahend}: {_pp(r.gap)} pp [{_pp(low)}, {_pp(high)}] "
                         f"({int(r.seeds)} seeds)" + (", both at chance" if chance else ""))
        claim.findings.append(Finding(*key, _combine(states), "; ".join(parts)))
    if not claim.findings:
        claim.note = "No experiment with a synthetic bias among the records."
    return claim


def _combine(states: list[str]) -> str:
    measured = [s for s in states if s != NOT_MEASURED]
    if not measured:
        return NOT_MEASURED
    if FAILS in measured:
        return FAILS
    return HOLDS if all(s == HOLDS for s in measured) else UNCLEAR


def _decide(diff: float, p: float) -> str:
    """One comparison of a 'better than' claim: ahead and significant, ahead, or not ahead."""
    if diff is None or math.isnan(diff):
        return NOT_MEASURED
    if diff <= 0:
        return FAILS
    return HOLDS if (not math.isnan(p) and p < ALPHA) else UNCLEAR


# -------------------------------------------------------------------------------- claim 2
def claim_beats(analysis: Analysis, baselines: str) -> Claim:
    """Claim 2 (``baselines="plain"``: the plain classifier) or 3 (``"comparison"``: the other
    benchmark methods)."""
    plain = baselines == "plain"
    who = "the standard classifier" if plain else "the other baselines"
    claim = Claim(
        2 if plain else 3,
        f"ISNet beats {who} on the deceiving / external tests.",
        "ISNet's accuracy minus the other method's on the deceiving and external test splits (every shifted split "
        "of an experiment that has neither); "
        f"estimator: {ESTIMATOR}. Holds when ISNet is ahead with adjusted p < {ALPHA} in every comparison, does not "
        f"hold when the other method is level or ahead in any, inconclusive otherwise. {CHANCE_RULE} {LEARNING_RULE} "
        "ISNet is the method whose records state role `reference`; "
        + ("the standard classifier, role `plain_baseline`." if plain else
           "the baselines, every method with role `comparison` (ISNet's own variants, role `reference_variant`, "
           "and the plain baseline are left out)."),
    )
    paired = analysis.paired
    for key, cast in _judged(analysis, claim, [k for k in _keys(analysis) if analysis.roles[k].shift_splits]):
        roles = analysis.roles[key]
        others, unlearnt = _learners(analysis, key, cast.plain if plain else cast.comparisons)
        if not others:
            claim.findings.append(Finding(*key, NOT_MEASURED, f"no {who} runs" + _unlearnt_text(unlearnt)))
            continue
        targets = [s for s in roles.shift_splits if s in CLAIM_SPLITS] or list(roles.shift_splits)
        block = paired[(paired["experiment"] == key[0]) & (paired["profile"] == key[1])
                       & paired["other"].isin(others) & paired["split"].isin(targets)] \
            if not paired.empty else paired
        if block.empty:
            claim.findings.append(Finding(*key, NOT_MEASURED, "no paired comparison on a shifted split"))
            continue
        order = {s: i for i, s in enumerate(roles.order)}
        block = block.assign(_o=block["split"].map(order)).sort_values(["_o", "other"], kind="stable")
        rows = [r for _, r in block.iterrows()]
        chance = [_both_at_chance(analysis, key, (cast.reference, r["split"]), (r["other"], r["split"])) for r in rows]
        diff, low, high, p = (f"{PRIMARY}_{k}" for k in ("diff", "low", "high", "p_holm"))
        states = [UNCLEAR if c else _decide(r[diff], r[p]) for r, c in zip(rows, chance, strict=True)]
        evidence = "; ".join(
            f"{r['split']} vs `{r['other']}`: {_pp(r[diff])} pp [{_pp(r[low])}, {_pp(r[high])}] (p_Holm {_p(r[p])}; "
            f"{r['seeds_ref']} vs {r['seeds_other']} seeds)" + (", both at chance" if c else "")
            for r, c in zip(rows, chance, strict=True))
        claim.findings.append(Finding(*key, _combine(states), evidence + _unlearnt_text(unlearnt)))
    return claim


# -------------------------------------------------------------------------------- claim 4
def claim_background(analysis: Analysis) -> Claim:
    claim = Claim(
        4, "ISNet's heatmaps put less relevance on the background than the other methods'.",
        f"Share of positive {CLAIM_EXPLAINER.upper()} relevance inside the foreground mask (so 1 minus the background "
        "share), ISNet's seed mean minus each other method's (the numbers of the explanation table; ISNet's own "
        "variants, role `reference_variant`, excluded) on every test split; estimator: the difference of the seed "
        "means, its interval and p-value from bootstrap resamples of the explained images (the same resample for "
        "both methods), p two-sided by inverting the percentile interval, Holm-Bonferroni adjusted over the "
        f"experiment's comparisons. Holds when ISNet is ahead with adjusted p < {ALPHA} in every comparison, does "
        "not hold when another method is level or ahead in any, inconclusive otherwise. A heatmap is evidence about "
        f"what a model reads only where it accounts for the model's output: {FAITHFULNESS_RULE}. On a split where "
        "ISNet's heatmaps are not faithful by that rule the claim is not measured there; another method whose "
        f"heatmaps are not faithful is left out of the comparison (both named in the evidence). {LEARNING_RULE} The "
        "other explainers are in the explanation tables.",
    )
    rel = analysis.relevance_paired
    for key, cast in _judged(analysis, claim):
        learners, unlearnt = _learners(analysis, key, cast.baselines())
        block = rel[(rel["experiment"] == key[0]) & (rel["profile"] == key[1])] if not rel.empty else rel
        if not block.empty:
            block = block[block["other"].isin(learners)]
        if block.empty:
            claim.findings.append(Finding(*key, NOT_MEASURED, f"no {CLAIM_EXPLAINER} relevance scores to compare"))
            continue
        order = {s: i for i, s in enumerate(analysis.roles[key].order)}
        block = block.assign(_o=block["split"].map(order)).sort_values(["_o", "other"], kind="stable")
        pairs = {(cast.reference, sp) for sp in block["split"]} | set(zip(block["other"], block["split"], strict=True))
        faith = {pair: faithful(analysis.explanations, key, *pair) for pair in pairs}
        states, parts, dropped = [], [], []
        for r in block.itertuples(index=False):
            if faith[(cast.reference, r.split)] is False:
                continue
            if faith[(r.other, r.split)] is False:
                dropped.append(f"`{r.other}` on {r.split}")
                continue
            states.append(_decide(r.diff, r.p_holm))
            parts.append(f"{r.split} vs `{r.other}`: {_pp(r.diff)} pp inside [{_pp(r.low)}, {_pp(r.high)}] "
                         f"(p_Holm {_p(r.p_holm)})")
        unfaithful = sorted({sp for (m, sp), v in faith.items() if m == cast.reference and v is False},
                            key=lambda sp: order.get(sp, 99))
        if unfaithful:
            parts.append(f"ISNet's {CLAIM_EXPLAINER.upper()} heatmaps do not account for its logits on "
                         f"{', '.join(unfaithful)} (faithfulness table): not evidence there")
        if dropped:
            parts.append("left out, heatmaps not faithful: " + ", ".join(dropped))
        if any(v is None for v in faith.values()):
            parts.append("faithfulness not recorded for some runs (older records)")
        unscored = sorted(set(learners) - set(block["other"]))
        if unscored:
            parts.append(f"not compared (no {CLAIM_EXPLAINER} score): " + ", ".join(f"`{m}`" for m in unscored))
        claim.findings.append(Finding(*key, _combine(states) if states else NOT_MEASURED,
                                      "; ".join(parts) + _unlearnt_text(unlearnt)))
    return claim


# -------------------------------------------------------------------------------- claim 6
def claim_behaviour(analysis: Analysis) -> Claim:
    claim = Claim(
        6, "ISNet's predictions follow the background less than every other method's (what the models do).",
        f"On each experiment's headline behaviour measure ({HEADLINE_RULE}), ISNet's seed mean minus each other "
        "method's (ISNet's own variants, role `reference_variant`, excluded) on every test split where it is "
        f"measured; estimator: {ESTIMATOR}. Holds when ISNet is lower with adjusted p < {ALPHA} in every comparison, "
        "does not hold when another method is level or lower in any, inconclusive otherwise. A comparison where "
        "either side is degenerate (every seed predicts one class for at least "
        f"{DEGENERATE_SHARE:.0%} of the intact images: a constant classifier follows nothing) is inconclusive. No "
        f"explainer is involved: the images change, the predictions are compared. {LEARNING_RULE}",
    )
    paired = analysis.behaviour_paired
    for key, cast in _judged(analysis, claim):
        learners, unlearnt = _learners(analysis, key, cast.baselines())
        block = paired[(paired["experiment"] == key[0]) & (paired["profile"] == key[1])] if not paired.empty \
            else paired
        if not block.empty:
            block = block[block["other"].isin(learners)]
        if block.empty:
            claim.findings.append(Finding(*key, NOT_MEASURED, "no counterfactual tests recorded"))
            continue
        states, parts = [], []
        for r in block.itertuples(index=False):
            stuck = [m for m in (cast.reference, r.other) if degenerate(analysis, key, m, r.split)]
            states.append(UNCLEAR if stuck else _decide(-r.diff, r.p_holm))
            parts.append(f"{r.split} vs `{r.other}`: {_pp(r.diff)} pp [{_pp(r.low)}, {_pp(r.high)}] "
                         f"(p_Holm {_p(r.p_holm)})" + (f", degenerate: {', '.join(stuck)}" if stuck else ""))
        test, measure = block["test"].iloc[0], block["measure"].iloc[0]
        claim.findings.append(Finding(*key, _combine(states), f"{measure_name(measure)}, {test}: " + "; ".join(parts)
                                      + _unlearnt_text(unlearnt)))
    return claim


def note_disagreements(claims: list[Claim], behaviour_claim: Claim) -> None:
    """Say in each claim where its verdict and the behaviour claim's differ, experiment by experiment."""
    judged = {(f.experiment, f.profile): f.verdict for f in behaviour_claim.findings}
    for c in claims:
        if c is behaviour_claim:
            continue
        differ = [f"{f.experiment} ({f.profile}): this claim {f.verdict}, claim 6 {judged[(f.experiment, f.profile)]}"
                  for f in c.findings if (f.experiment, f.profile) in judged
                  and f.verdict != judged[(f.experiment, f.profile)]]
        if differ:
            c.note = " ".join(filter(None, [c.note, "*Where claim 6 (behaviour) disagrees:* " + "; ".join(differ)
                                            + "."]))


# -------------------------------------------------------------------------------- claim 5
def claim_test_cost(analysis: Analysis) -> Claim:
    claim = Claim(
        5, "ISNet adds no cost at test time (it deploys the plain classifier).",
        f"Inference time per test image of ISNet (role `reference`) over the standard classifier's (role "
        f"`plain_baseline`; mean over seeds, all splits, the same device): holds when the ratio is at most "
        f"{1 + TIME_TOLERANCE:.2f} (a tolerance for timing noise), does not hold above it; not measured when the "
        "two were timed on different devices.",
    )
    t = analysis.timing
    for key in _keys(analysis):
        cast = analysis.cast[key]
        block = t[(t["experiment"] == key[0]) & (t["profile"] == key[1])] if not t.empty else t
        ref = block[block["method"] == cast.reference]
        if ref.empty:
            claim.findings.append(Finding(*key, NOT_MEASURED, NO_REFERENCE))
            continue
        plain = block[block["method"].isin(cast.plain)]
        if plain.empty:
            claim.findings.append(Finding(*key, NOT_MEASURED, "no runs of a plain baseline (role `plain_baseline`)"))
            continue
        states, parts = [], []
        ref = ref.iloc[0]
        for std in plain.itertuples(index=False):
            if ref["devices"] != std.devices or ";" in str(ref["devices"]):
                states.append(NOT_MEASURED)
                parts.append(f"`{std.method}` timed on different devices ({ref['devices']} / {std.devices})")
                continue
            ratio = ref["inference_ms_per_image"] / std.inference_ms_per_image
            states.append(NOT_MEASURED if math.isnan(ratio) else (HOLDS if ratio <= 1 + TIME_TOLERANCE else FAILS))
            parts.append(f"{ref['inference_ms_per_image']:.3f} vs {std.inference_ms_per_image:.3f} ms / image "
                         f"(`{std.method}`), ratio {ratio:.2f} ({ref['devices']})")
        claim.findings.append(Finding(*key, _combine(states), "; ".join(parts)))
    return claim


def decide(analysis: Analysis) -> list[Claim]:
    """Every claim, in the order of the paper's argument, then the claim on behaviour; each of
    claims 1-5 says where it and the behaviour claim disagree."""
    behaviour = claim_behaviour(analysis)
    claims = [
        claim_same_accuracy(analysis),
        claim_beats(analysis, "plain"),
        claim_beats(analysis, "comparison"),
        claim_background(analysis),
        claim_test_cost(analysis),
        behaviour,
    ]
    note_disagreements(claims, behaviour)
    return claims


def claims_frame(claims: list[Claim]) -> pd.DataFrame:
    rows = []
    for c in claims:
        rows.append({"claim": c.number, "statement": c.statement, "experiment": "(overall)", "profile": "",
                     "verdict": c.verdict, "evidence": c.note})
        rows += [{"claim": c.number, "statement": c.statement, "experiment": f.experiment, "profile": f.profile,
                  "verdict": f.verdict, "evidence": f.evidence} for f in c.findings]
    return pd.DataFrame(rows, columns=["claim", "statement", "experiment", "profile", "verdict", "evidence"])


def markdown(claims: list[Claim]) -> str:
    lines = []
    for c in claims:
        lines += [f"**Claim {c.number}: {c.statement}** Verdict: **{c.verdict}**.", "", f"*Rule.* {c.rule}", ""]
        if c.note:
            lines += [c.note, ""]
        if c.findings:
            lines += ["| experiment | profile | verdict | evidence |", "|---|---|---|---|"]
            lines += [f"| {f.experiment} | {f.profile} | {f.verdict}{' (smoke)' if f.profile == 'smoke' else ''} | "
                      f"{(f'**{SMOKE_NOTE}.** ' if f.profile == 'smoke' else '') + f.evidence.replace('|', '/')} |"
                      for f in c.findings]
            lines.append("")
    return "\n".join(lines)
