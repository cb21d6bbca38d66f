"""The answers of an extrapolation and how they are shown: one :class:`ModelAnswer` per
smaller model, gathered in an :class:`ExtrapolationResult` that renders the table, the
summary in words, its footnotes and warnings, and JSON or a DataFrame.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..common.text import model_label, num, sci, si, wrapped_table
from ..fitting.result import LawFit, law_json
from ..selection.policy import leverage_words, tokens_growth_words
from .specs import Target

__all__ = ["ModelAnswer", "ExtrapolationResult", "FLOP_CONVENTIONS", "QUANTITIES", "NEVER", "encode_never"]

FLOP_CONVENTIONS = {
    "6nd": "FLOPs counted as 6ND for training and 2N per inference token (Kaplan et al. 2020, Sec. 2.1)",
    "detailed": ("FLOPs per training token from the data's detailed count (Hoffmann et al. 2022, App. F); "
                 "inference costs one third of that per token (forward pass only)"),
}

#: How ``--json`` writes "never" (docs/json.md): an answer no number of tokens reaches,
#: because the model's floor lies above the target's loss. ``null`` keeps its meaning of
#: "not applicable" or "not computed", so a reader never confuses the two.
NEVER = "never"
#: The answers that are "never" for a model that cannot reach the target.
NEVER_QUANTITIES = ("tokens_to_match", "flops_to_match", "compute_multiple", "compute_multiple_own",
                    "breakeven_inference_tokens", "epochs_to_match")


def encode_never(d: dict) -> dict:
    """``d`` (one model's answers, or its own curve's) with "never" written as :data:`NEVER`:
    the point answers when ``tokens_to_match`` is unreachable, and each interval end that no
    draw reached (+inf)."""
    out = dict(d)
    if "tokens_to_match" in out and out["tokens_to_match"] is None:
        for q in NEVER_QUANTITIES:
            if q in out and out[q] is None:
                out[q] = NEVER
    ivs = out.get("intervals")
    if ivs:
        out["intervals"] = {q: [NEVER if (q in NEVER_QUANTITIES and v is not None and math.isinf(v)) else v
                                for v in iv] for q, iv in ivs.items()}
    return out


#: Quantities computed per model, in output order; all get intervals when draws exist.
QUANTITIES = ("loss_at_target_compute", "tokens_to_match", "flops_to_match", "compute_multiple",
              "compute_multiple_own", "breakeven_inference_tokens")


@dataclass
class ModelAnswer:
    """The answers for one smaller model under one law (see the module docstring)."""

    name: str
    params: float
    tokens: float | None
    flops: float | None
    loss: float | None
    loss_source: str | None
    floor: float
    tokens_at_target_compute: float | None
    loss_at_target_compute: float | None
    tokens_to_match: float | None
    flops_to_match: float | None
    compute_multiple: float | None
    compute_multiple_own: float | None
    breakeven_inference_tokens: float | None
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    unreachable_fraction: float | None = None
    p_wins_at_equal_compute: float | None = None
    run: str | None = None
    curve: dict | None = None
    #: the target loss these answers were computed against
    target_loss: float | None = None
    #: the size at which the law was evaluated (the non-embedding count for Kaplan fits)
    law_params: float | None = None
    #: with a unique-token limit U: epochs over U to match the target, and at the target's compute
    epochs_to_match: float | None = None
    epochs_at_target_compute: float | None = None
    #: the model's own measured runs against the target's loss (:func:`analysis.extrapolation.study.measured_answers`):
    #: ``{"tokens": crossing or None, "longest": tokens of its longest run, "inside": bool or None}``
    measured: dict | None = None
    #: how far the tokens-to-match answer extrapolates (:func:`analysis.extrapolation.study.answer_distances`:
    #: the same record ``scaling fit --predict`` gives a prediction), or None
    distance: dict | None = None

    @property
    def reachable(self) -> bool:
        return self.tokens_to_match is not None

    @property
    def wins_at_equal_compute(self) -> bool | None:
        if self.loss_at_target_compute is None or self.target_loss is None:
            return None
        return bool(self.loss_at_target_compute < self.target_loss)

    def agreement_note(self, level: float) -> str | None:
        """Why the point answer and its interval disagree about "never", or None when they agree.

        The point comes from the fit itself, the interval from the bootstrap draws and the error
        model's loss band, so a point can reach the target while more draws than the interval's
        tail leaves out never do, or while the band at longer training reaches below the floor
        (and the reverse)."""
        frac, iv = self.unreachable_fraction, self.intervals.get("tokens_to_match")
        if frac is None or iv is None:
            return None
        tail = 100 * (1 - level) / 2
        if self.reachable and not math.isfinite(iv[1]):
            if 100 * frac > tail:
                return (f"the fit itself reaches the target's loss, but {100 * frac:.0f}% of the interval's draws "
                        f"never do (more than the {tail:g}% its upper tail leaves out), so its upper end is never: "
                        "the point is the fit's answer, the interval how far it could be off")
            return ("the fit itself reaches the target's loss, but the loss error expected at longer training "
                    "(it grows with the distance in tokens per parameter) keeps the target inside the model's "
                    f"{100 * level:g}% band all the way down to its floor {self.floor:.4g}, so the interval's upper "
                    "end is never: the point is the fit's answer, the interval how far it could be off")
        if not self.reachable and math.isfinite(iv[1]):
            return (f"the fit itself never reaches the target's loss (its floor {self.floor:.4g} lies above it), but "
                    f"{100 * (1 - frac):.0f}% of the interval's draws do, so the interval is finite: the floor is "
                    "too uncertain to rule an answer out")
        return None

    def to_dict(self, never: bool = True) -> dict:
        """JSON-ready answers; ``never``: write unreachable answers as :data:`NEVER` (False:
        None and +inf, as a table column of numbers needs)."""
        d = {k: getattr(self, k) for k in (
            "name", "params", "law_params", "tokens", "flops", "loss", "loss_source", "floor", "reachable",
            "tokens_at_target_compute", "loss_at_target_compute", "wins_at_equal_compute",
            "tokens_to_match", "flops_to_match", "compute_multiple", "compute_multiple_own",
            "breakeven_inference_tokens")}
        d["intervals"] = {k: [lo, hi] for k, (lo, hi) in self.intervals.items()}
        d["unreachable_fraction"] = self.unreachable_fraction
        d["p_wins_at_equal_compute"] = self.p_wins_at_equal_compute
        if self.epochs_at_target_compute is not None:
            d["epochs_at_target_compute"] = self.epochs_at_target_compute
            d["epochs_to_match"] = self.epochs_to_match
        if self.run is not None:
            d["run"] = self.run
        if self.curve is not None:
            d["curve"] = encode_never(self.curve) if never else self.curve
        if self.measured is not None:
            d["measured"] = dict(self.measured)
        if self.distance is not None:
            d["distance"] = dict(self.distance)
        return encode_never(d) if never else d



@dataclass
class ExtrapolationResult:
    """Answers for every smaller model against one target under one law."""

    law: LawFit
    target: Target
    models: list[ModelAnswer]
    flops: str = "6nd"
    level: float = 0.90
    warnings: list[str] = field(default_factory=list)
    #: the unique tokens every run repeats (Muennighoff et al. 2023), or None for unlimited data
    unique_tokens: float | None = None
    #: how far the target lies beyond the fitted sizes and what that added to the intervals
    #: (:func:`analysis.extrapolation.study.widen_by_distance`), or None
    distance: dict | None = None

    @property
    def n_draws(self) -> int:
        return 0 if self.law.samples is None else int(len(self.law.samples))

    def to_dict(self) -> dict:
        """JSON-ready: ``target`` (params, tokens, flops, loss) and ``models`` (see the CLI docs)."""
        law = self.law
        out = {
            "law": law_json(law, self.n_draws),
            "flop_convention": FLOP_CONVENTIONS[self.flops],
            # the level of every interval below (bootstrap or error model); null when none has one
            "level": self.level if (self.n_draws or any(m.intervals for m in self.models)) else None,
            "target": self.target.to_dict(),
            "models": [self._model_json(m) for m in self.models],
            "warnings": list(self.warnings),
        }
        if self.unique_tokens is not None:
            out["unique_tokens"] = self.unique_tokens
        if self.distance is not None:
            out["distance"] = dict(self.distance)
        return out

    def _model_json(self, m: ModelAnswer) -> dict:
        d = m.to_dict()
        note = m.agreement_note(self.level)
        if note:
            d["note"] = note
        return d

    def to_frame(self):
        """One row per model; interval ends as ``<quantity>_low`` / ``<quantity>_high``."""
        import pandas as pd

        rows = []
        for m in self.models:
            d = m.to_dict(never=False)
            ivs = d.pop("intervals")
            curve = d.pop("curve", None)
            for q, (lo, hi) in ivs.items():
                d[f"{q}_low"], d[f"{q}_high"] = lo, hi
            if curve:
                for k in ("tokens_to_match", "loss_at_target_compute", "compute_multiple", "floor"):
                    d[f"curve_{k}"] = curve.get(k)
            rows.append(d)
        return pd.DataFrame(rows)

    def header(self) -> str:
        law, t = self.law, self.target
        name = law.name or law.law
        shown = name if name == law.law else f"{name} ({law.law})"  # a fitted law's name is its law
        lines = [f"Law: {shown} - {law.source if law.is_published else law.law_obj.citation}"]
        if self.n_draws and self.distance is not None:
            lines.append(f"Intervals: {100 * self.level:g}%, the error model's (Distance line below), extended where the "
                         f"percentiles of {self.n_draws} bootstrap draws reach beyond it")
        elif self.n_draws:
            lines.append(f"Intervals: {100 * self.level:g}% percentile over {self.n_draws} bootstrap draws")
        elif self.distance is not None:
            lines.append(f"Intervals: {100 * self.level:g}%, the error model's (Distance line below)")
        lines.append(FLOP_CONVENTIONS[self.flops] + ".")
        if self.unique_tokens is not None:
            lines.append(f"Data limit: {si(self.unique_tokens)} unique tokens, repeated as often as a run needs "
                         "(Muennighoff et al. 2023); 'never' means the repetition-limited floor lies above the target.")
        if law.n_column == "params_nonembedding":
            lines.append("N in the law: non-embedding parameters, as the law counts them (Kaplan et al. 2020); "
                         "params and FLOPs count all parameters.")
        if t.params is not None:
            head = (f"Target: {t.name or si(t.params)} ({si(t.params)} params, {si(t.tokens)} tokens, "
                    f"{sci(t.flops)} FLOPs), ")
            if t.matches_measured:
                lines.append(head + f"loss {num(t.loss)} measured, which the answers match; the law predicts "
                             f"{_fmt_loss(t.law_value, t.loss_interval)}")
            else:
                lines.append(head + f"loss {_fmt_loss(t.law_value, t.loss_interval)} predicted by the law"
                             + (f"; measured {num(t.loss_measured)}" if t.loss_measured is not None else ""))
        else:
            lines.append(f"Target: loss {num(t.loss)} ({t.how})")
        if self.distance is not None:
            d = self.distance
            if d["params_ratio"] <= 1.0 + 1e-9:
                where = "the target is a fitted size"
            else:
                beyond = (f"beyond every backtest split (the farthest reached {d['reach']:.3g}x), so this rests on "
                          "the error model" if d["beyond_every_split"]
                          else f"within the backtest's reach ({d['reach']:.3g}x)")
                where = f"the target is {d['params_ratio']:.3g}x the largest fitted size, {beyond}"
            lines.append(f"Distance: {where}; the law's value there is uncertain by +-{100 * d['half_width']:.2g}%: the fit's "
                         f"scatter ({100 * d['scale']:.2g}%) times {_growth_words(d)}; each answer's interval takes "
                         "the same model at its own size and tokens (tokens to match through the law's slope, each "
                         "end at its own tokens), "
                         "extended only where the bootstrap or a tied law reaches beyond it")
        return "\n".join(lines)

    def display_rows(self) -> list[dict[str, str]]:
        """The answers formatted for people, one dict of column -> text per model."""
        rows = []
        for m in self.models:
            iv = m.intervals
            never = f"never (floor {m.floor:.4g})"
            row = {
                "model": model_label(m.params, m.name), "tokens": si(m.tokens),
                "own loss": num(m.loss) + ("" if m.loss_source != "law" else "*"),
                "loss @ target C": _with_iv(m.loss_at_target_compute, iv.get("loss_at_target_compute"), num),
                "wins @ target C": _wins(m),
                "tokens to match": (_with_iv(m.tokens_to_match, iv.get("tokens_to_match"), _count) if m.reachable
                                    else never),
                **({"epochs @ target C": _epochs(m.epochs_at_target_compute),
                    "epochs to match": (_with_iv(m.epochs_to_match, iv.get("epochs_to_match"), _epochs) if m.reachable
                                        else "-")}
                   if self.unique_tokens is not None else {}),
                "FLOPs to match": sci(m.flops_to_match) if m.reachable else "-",
                "x target C": _with_iv(m.compute_multiple, iv.get("compute_multiple"), _times),
                "break-even inference tokens": _with_iv(m.breakeven_inference_tokens,
                                                        iv.get("breakeven_inference_tokens"), _count),
            }
            frac = m.unreachable_fraction
            if frac is not None and m.reachable and round(100 * frac) > 0:
                row["tokens to match"] += f" ({100 * frac:.0f}% of draws: never)"
            elif frac is not None and not m.reachable and round(100 * (1 - frac)) > 0:
                row["tokens to match"] += f" ({100 * (1 - frac):.0f}% of draws reach it)"
            if m.curve is not None:
                c = m.curve
                civ = c.get("intervals", {}).get("tokens_to_match")
                row["own curve: tokens to match"] = (
                    _with_iv(c["tokens_to_match"], tuple(civ) if civ else None, _count) if c.get("tokens_to_match")
                    else f"never (floor {c['floor']:.4g})")
                cfrac = c.get("unreachable_fraction")
                if c.get("tokens_to_match") and cfrac:
                    row["own curve: tokens to match"] += f" ({100 * cfrac:.0f}% of draws: never)"
                elif not c.get("tokens_to_match") and cfrac is not None and cfrac < 1:
                    row["own curve: tokens to match"] += f" ({100 * (1 - cfrac):.0f}% of draws reach it)"
            rows.append(row)
        # a model without an answer in some column (no own curve: an empty metrics file) shows "-"
        columns = list(dict.fromkeys(k for r in rows for k in r))
        return [{k: r.get(k, "-") for k in columns} for r in rows]

    def summary(self) -> list[str]:
        """One line per question, in words."""
        t, out = self.target, []
        if t.flops is not None and self.models:
            cands = [(m.loss_at_target_compute, m.name) for m in self.models if m.loss_at_target_compute is not None]
            cands.append((t.loss, t.name))
            best = min(cands)
            out.append(f"At {t.name}'s compute ({sci(t.flops)} FLOPs) the lowest loss is {best[1]}'s ({num(best[0])}).")
        reach = [m for m in self.models if m.reachable]
        never = [m for m in self.models if not m.reachable]
        costs = [(m.flops_to_match, m.name, m.tokens_to_match) for m in reach]
        if t.flops is not None:
            costs.append((t.flops, t.name, t.tokens))
        if costs:
            flops, name, tokens = min(costs)
            out.append(f"Cheapest to train to the target's loss: {name} ({sci(flops)} FLOPs, {_count(tokens)} tokens).")
        if never:
            out.append("Never reaches the target's loss: " + ", ".join(f"{m.name} (floor {m.floor:.4g})" for m in never) + ".")
        return out

    def footnotes(self) -> list[str]:
        notes = []
        if any(m.loss_source == "law" for m in self.models):
            notes.append("* own loss predicted by the law at the model's own tokens (not measured)")
        notes += [f"{m.name}: {note}" for m in self.models if (note := m.agreement_note(self.level))]
        for m in self.models:
            # a never answer whose interval reaches the target: where the interval starts
            low = m.intervals.get("tokens_to_match", (math.nan,))[0]
            if not m.reachable and math.isfinite(low) and m.agreement_note(self.level) is None:
                notes.append(f"{m.name}: never at the fit's own values, but its {100 * self.level:g}% interval reaches "
                             f"the target's loss from {_count(low)} tokens on")
        if any(m.breakeven_inference_tokens == 0 for m in self.models):
            notes.append("break-even 0: the model is already cheaper to train to the target's loss, "
                         "so it is the cheaper choice from the first served token")
        return notes

    def table(self, header: bool = True) -> str:
        """The answers as an aligned text table (intervals in brackets)."""
        rows = self.display_rows()
        columns = list(dict.fromkeys(k for r in rows for k in r))
        # in blocks of at most 116 columns (120 with the demo's indent), each naming its model
        text = (wrapped_table(rows, columns, formats={k: str for k in columns}) if rows
                else "(no model smaller than the target)")
        parts = [self.header(), "", text] if header else [text]
        parts += self.footnotes()
        parts += self.distance_lines()
        parts += self.measured_lines()
        if header and self.models:
            parts += [""] + self.summary()
        if self.warnings:
            parts += ["", "Warnings:"] + [f"  - {w}" for w in self.warnings]
        return "\n".join(parts)

    def distance_lines(self) -> list[str]:
        """Per smaller model with an answer: how far its tokens to match extrapolate, in tokens
        per parameter against the most fitted near its size and in size against the largest
        fitted (``ModelAnswer.distance``)."""
        rows = [m for m in self.models if m.distance is not None and m.tokens_to_match is not None]
        if not rows:
            return []
        out = ["Answer distance: each model's tokens to match, in tokens per parameter against the most fitted near "
               "its size"]
        for m in rows:
            d = m.distance
            tpp = d["tokens_per_param"]
            ref = fitted_near(d)
            line = f"  {model_label(m.params, m.name)}: {_count(m.tokens_to_match)} tokens, {tpp:.3g} per parameter"
            if ref:
                line += f", {tpp / ref:.2g}x the {ref:.3g} fitted near it"
            if d["params_ratio"] > 1 + 1e-9:
                line += f"; {d['params_ratio']:.3g}x the largest fitted size"
                if d.get("beyond_every_split"):
                    line += ", beyond every backtest split"
            if d.get("z_tokens") is not None:
                line += f"; z_N = {d['z_size']:.2g}, z_t = {d['z_tokens']:.2g}"
            out.append(line)
        return [""] + out

    def measured_lines(self) -> list[str]:
        """Per smaller model with runs of its own: where those runs cross the target's loss,
        beside the law's answer, and whether the law's interval holds the measurement."""
        rows = [m for m in self.models if m.measured is not None]
        if not rows:
            return []
        loss = rows[0].measured["target_loss"]
        out = [f"Measured: where each model's own runs cross the target's loss {num(loss)} "
               f"({'measured' if loss == self.target.loss_measured else 'predicted'}), beside the law's answer"]
        for m in rows:
            me, iv = m.measured, m.intervals.get("tokens_to_match")
            law = (_with_iv(m.tokens_to_match, iv, _count) if m.reachable else f"never (floor {m.floor:.4g})")
            if me["tokens"] is None:
                seen = f"not reached by its longest run, {_count(me['longest'])} tokens"
            else:
                seen = f"{_count(me['tokens'])} tokens"
            verdict = {True: "inside the law's interval", False: "OUTSIDE the law's interval",
                       None: "no interval to compare"}[me["inside"]]
            if me["tokens"] is None:
                verdict = ("consistent with the law" if me["inside"] is not False
                           else "the law's interval ends before its longest run")
            out.append(f"  {model_label(m.params, m.name)}: {seen}; law {law}; {verdict}")
        return [""] + out

    def __str__(self) -> str:
        return self.table()


def fitted_near(distance: dict) -> float | None:
    """The tokens per parameter an answer's distance record (``ModelAnswer.distance``) is
    measured against: the error model's, the most fitted within an e-fold of the nearest
    fitted size (a neighbour's longer runs count); without one, the nearest size's own most;
    None without a record of the fitted range."""
    far = distance.get("tokens_distance")
    if far:
        return distance["tokens_per_param"] / far
    near = distance.get("fitted_tokens_per_param_near_N")
    return near["range"][1] if near else None


def _growth_words(d: dict) -> str:
    """The error model's growth at the target, in words: its distances in size and in tokens
    per parameter, and the c (and c_t) each is multiplied by, with where they come from."""
    if "z_size" not in d:  # a record from before c_t
        return f"sqrt(1 + c z^2), z = {d['z']:.2g} standard deviations from the centre of the fitted design"
    tokens = d["z_tokens"] is not None
    text = (f"sqrt(1 + c z_N^2 + c_t z_t^2), z_N = {d['z_size']:.2g} and z_t = {d['z_tokens']:.2g} standard deviations "
            "of ln N and ln D/N from the centre of the fitted design" if tokens else
            f"sqrt(1 + c z_N^2), z_N = {d['z_size']:.2g} standard deviations of ln N from the centre of the fitted sizes")
    if "leverage" not in d:
        return text
    text += (f", c = {d['leverage']:.2g} ("
             + leverage_words(d.get("leverage_splits", 0), d.get("leverage_range"), brief=True) + ")")
    if not tokens:
        return text
    return text + ", " + tokens_growth_words(d.get("leverage_tokens"), d.get("leverage_tokens_splits", 0),
                                             d.get("leverage_tokens_range"), brief=True)


def _wins(m: ModelAnswer) -> str:
    w = m.wins_at_equal_compute
    if w is None:
        return "-"
    s = "yes" if w else "no"
    return s + (f" (p={m.p_wins_at_equal_compute:.2f})" if m.p_wins_at_equal_compute is not None else "")


def _fmt_loss(x, iv) -> str:
    return num(x) + (f" [{num(iv[0])}, {num(iv[1])}]" if iv else "")


def _count(x) -> str:
    """Token counts: SI suffixes up to trillions, scientific notation beyond."""
    return "-" if x is None else (si(x) if abs(x) < 1e15 else sci(x))


def _epochs(x) -> str:
    return "-" if x is None else f"{x:.3g}"


def _times(x) -> str:
    return "-" if x is None else f"{x:.3g}x"


def _with_iv(x, iv, fmt) -> str:
    if x is None:
        return "-"
    s = fmt(x)
    if iv is not None:
        lo, hi = iv
        s += f" [{fmt(lo) if math.isfinite(lo) else '-'}, {fmt(hi) if math.isfinite(hi) else 'never'}]"
    return s


