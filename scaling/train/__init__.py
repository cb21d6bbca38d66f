"""One training run: ``run.train`` resolves the plan once and hands it to the ``Trainer``
(``trainer``), whose parts keep their own state: checkpoints (``resume``), WSD cooldown
branches (``branches``), non-finite steps (``diagnostics``), the batches (``loader``), the
checks before any work (``preflight``), progress and signals."""
