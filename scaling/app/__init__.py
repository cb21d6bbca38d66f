"""The composition root: what a person runs. The ``scaling`` command line (``cli/``), the
end-to-end demo, the soak test and the benchmarks. It may import everything below it (the
trainer core, ``sweeps``, ``analysis``); nothing below imports it (``lint-imports``)."""
