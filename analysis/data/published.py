"""Published numbers built into the toolkit, each with its source.

Reference laws are :class:`~analysis.fitting.result.LawFit` objects, usable anywhere a fitted
law is. Losses of different papers are not comparable with each other or with ours:
each was measured on its own data set and tokenizer (MassiveText for Hoffmann et al.,
WebText2 for Kaplan et al.), so use them for shapes, exponents and allocations, and
compare absolute losses only within one source.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..common.errors import InputError
from ..fitting.result import LawFit
from ..laws import published_sets


def _published(name: str) -> LawFit:
    law, pub = published_sets()[name]
    return LawFit(law=law.name, params=dict(pub.params), source=pub.source, name=name, method="published", meta={})


def hoffmann2022() -> LawFit:
    """Chinchilla Approach 3: E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28
    (Hoffmann et al. 2022, Sec. 3.3); fitted with a Huber loss (delta 1e-3) on log-loss."""
    return _published("hoffmann2022")


def besiroglu2024() -> LawFit:
    """The replication's refit: E=1.8172, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658
    (Besiroglu et al. 2024, their Approach-3 estimates)."""
    return _published("besiroglu2024")


def kaplan2020() -> LawFit:
    """Kaplan et al. 2020 joint law L(N, D), eq. (1.5) with Table 2's fit (N non-embedding)."""
    return _published("kaplan2020")


def kaplan2020_n() -> LawFit:
    """Kaplan et al. 2020 eq. (1.1): alpha_N=0.076, N_c=8.8e13 (non-embedding N)."""
    return _published("kaplan2020_n")


def kaplan2020_d() -> LawFit:
    """Kaplan et al. 2020 eq. (1.2): alpha_D=0.095, D_c=5.4e13 tokens."""
    return _published("kaplan2020_d")


def kaplan2020_c() -> LawFit:
    """Kaplan et al. 2020 eq. (1.3): alpha_C=0.050, C_c=3.1e8 PF-days in FLOPs."""
    return _published("kaplan2020_c")


class _PublishedLaws(Mapping):
    """Name -> constructor of every published set of every registered law, read from the
    law objects on each look-up, so a law registered later brings its sets with it."""

    def __getitem__(self, key):
        if key not in published_sets():
            raise KeyError(key)
        return lambda: _published(key)

    def __iter__(self):
        return iter(published_sets())

    def __len__(self):
        return len(published_sets())


#: Named reference laws: name -> constructor.
PUBLISHED_LAWS = _PublishedLaws()


def published_law(name: str) -> LawFit:
    """A published law by name, e.g. ``published_law("hoffmann2022")``."""
    try:
        return _published(name)
    except KeyError:
        raise InputError(f"unknown published law {name!r}", field="law",
                         fix="use one of " + ", ".join(published_sets())) from None


# ---------------------------------------------------------------------- LLaMA facts

LLAMA_SOURCE = ("Touvron et al. 2023, 'LLaMA: Open and Efficient Foundation Language Models', "
                "Table 15 (GPU-hours on A100-80GB) and Sec. 2")


@dataclass(frozen=True)
class PublishedModel:
    """A published model: parameters, training tokens, and training cost as reported."""

    name: str
    params: float
    tokens: float
    gpu_hours: float | None = None
    gpu: str = ""
    source: str = ""

    @property
    def flops_6nd(self) -> float:
        """Training compute as 6ND (Kaplan et al. 2020, Sec. 2.1)."""
        return 6.0 * self.params * self.tokens


#: LLaMA 1 (Touvron et al. 2023): parameters, tokens and Table 15 A100-80GB GPU-hours.
LLAMA = (
    PublishedModel("LLaMA-7B", 6.7e9, 1.0e12, 82_432, "A100-80GB", LLAMA_SOURCE),
    PublishedModel("LLaMA-13B", 13.0e9, 1.0e12, 135_168, "A100-80GB", LLAMA_SOURCE),
    PublishedModel("LLaMA-33B", 32.5e9, 1.4e12, 530_432, "A100-80GB", LLAMA_SOURCE),
    PublishedModel("LLaMA-65B", 65.2e9, 1.4e12, 1_022_362, "A100-80GB", LLAMA_SOURCE),
)

#: Published model families addressable as ``scaling extrapolate --published NAME``.
PUBLISHED_MODELS = {"llama": LLAMA}
