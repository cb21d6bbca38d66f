"""scaling: a compact trainer for a ladder of LLaMA-style decoders, for scaling-law studies.

Importing this package is cheap; torch is imported by the modules that need it
(``scaling.model``, ``scaling.train.trainer``...), so ``scaling fit`` never loads torch.
"""
__version__ = "0.1.0"
