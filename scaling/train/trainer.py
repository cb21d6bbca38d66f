"""The training loop: exactly a token budget, a run record, checkpoints, WSD branches, DDP.

:class:`Trainer` executes a validated :class:`scaling.config.Plan`, resolved once by
:func:`scaling.train.run.train` and handed over in a :class:`RunSpec` with the run's name,
directory and device. One optimizer step
``s`` (1-based) trains on the global batch drawn from ``(seed, s)``; each process takes
its rows and splits them into micro-batches, so 1 or N processes, with or without
accumulation, see the same global batch. After the step come, in this order: the
validation loss (at the plan's log-spaced steps), the metrics row, any WSD cooldown
branch forking at this step, a periodic checkpoint, and a SIGTERM check. A checkpoint
therefore always covers every branch forked at or before its step, which is what lets
a resumed run re-log exactly the rows an uninterrupted run would.

Only rank 0 writes the record (``analysis.common.records`` defines its format).

This file reads top to bottom: :meth:`Trainer.run` (set-up and how a run ends),
:meth:`Trainer.loop` and :meth:`Trainer.run_branch`, :meth:`Trainer.train_step`,
:meth:`Trainer.evaluate`, then the set-up and the record. The helpers live beside it:
:mod:`scaling.train.preflight` (checks of the run directory, disk, device and kernels before
any work), :mod:`scaling.train.resume` (checkpoints and trimming the record on resume),
:mod:`scaling.train.branches` (WSD cooldown branches), :mod:`scaling.train.signals` (SIGTERM),
:mod:`scaling.train.diagnostics` (non-finite steps, bad token ids, a full disk),
:mod:`scaling.train.progress` (the progress bar) and :mod:`analysis.common.schedules` (the
learning-rate schedule). Each helper keeps its own
state in a small object the trainer holds (:class:`~scaling.train.resume.Checkpointer`,
:class:`~scaling.train.branches.Branches`, :class:`~scaling.train.diagnostics.NonFiniteLog`) and is
handed what else it needs; what a checkpoint keeps of them goes through their
``state_dict()`` and ``load_state_dict()``.

Faults: the output directory is checked for write access and free space before any
data is read or step is taken; a non-finite loss or gradient stops the run (or skips
the update) and leaves ``diverged.json`` (or a row in ``nonfinite.jsonl``) describing
the step; a write that fails for lack of space or permission mid-run ends the run with
one line saying so, leaving the newest checkpoint and every record file intact.
"""
from __future__ import annotations

import contextlib
import logging
import math
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from analysis.common import records
from analysis.common.errors import DivergenceError
from analysis.common.schedules import ScheduleKind, lr_factor
from scaling import __version__
from scaling import checkpoint as ckpt
from scaling.train import diagnostics as diag
from scaling import distributed as D
from scaling import flops as F
from scaling import loggers
from scaling.train import preflight
from scaling.train.branches import Branches
from scaling.config import OnNonFinite, Plan, TrainConfig, config_hash, to_dict, to_yaml
from scaling.data.corpus import data_warnings, load_corpus, predicted_bytes, restrict_unique
from scaling.train.diagnostics import DIVERGED_FILE, NonFiniteLog
from scaling.train.loader import Loader
from scaling.model import Transformer
from scaling.train.progress import Reporter
from scaling.train.resume import Checkpointer
from scaling.train.signals import Stop, StopRequest

log = logging.getLogger("scaling.train.run")


@dataclass(frozen=True)
class RunSpec:
    """What the trainer is handed, settled once before it starts
    (:func:`scaling.train.run.resolve_run`): the run's Plan, its name and directory (both
    from that Plan), and its device."""

    plan: Plan  # resolved with the data's vocabulary, this world's size and the device's memory
    data_vocab: int  # that vocabulary (scaling.data.corpus.data_vocab), known before any token is read
    run_name: str
    run_dir: Path
    device: torch.device


class Trainer:
    """One run: ``Trainer(cfg, run, world).run()`` returns the summary dict."""

    def __init__(self, cfg: TrainConfig, run: RunSpec, world: D.World, *, prefetch: bool = True,
                 read_every_step: bool = False, before_training=None):
        """``prefetch=False`` and ``read_every_step=True`` restore the loop as it was before
        the loader and the deferred reads (the baseline ``scaling.app.bench train`` compares
        with); a run's record does not depend on them. ``before_training(plan, device)`` is
        called on rank 0 of a fresh run once every check has passed, before the first step
        (the command line announces a long run there)."""
        self.before_training = before_training
        self.cfg, self.world = cfg, world
        self.plan, self.data_vocab = run.plan, run.data_vocab
        self.run_name, self.run_dir, self.device = run.run_name, Path(run.run_dir), run.device
        self.prefetch, self.read_every_step = prefetch, read_every_step
        self.is_main = world.is_main
        self.hash = config_hash(cfg)
        self.precision = cfg.precision if cfg.precision != "auto" else (
            "bf16" if self.device.type == "cuda" else "fp32")
        self.stop = StopRequest()
        # the helpers' own state (checkpointed through their state_dict())
        self.checkpoints = Checkpointer(self.run_dir, world, cfg, self.hash)
        self.branches = Branches(self.plan, self.run_dir, self.is_main)
        self.nonfinite = NonFiniteLog(self.run_dir, self.is_main, cfg.on_nonfinite.value)
        self.metrics: Optional[records.JsonlAppender] = None
        self.logger = None  # logger=tensorboard|wandb: the metric rows again, live (scaling.loggers)
        # rows in metrics.jsonl (rank 0), saved with each checkpoint so a resume can tell
        # when rows were lost from the file; and how many a resume found lost
        self.metrics_rows = 0
        self.lost_metric_rows = 0
        self.final_val: Optional[float] = None
        self.val_bytes_per_token: Optional[float] = None  # set with the validation set (bits per byte)
        self.last_train_loss: Optional[float] = None
        self.created_dirs: list[Path] = []  # what the write check created, undone if set-up fails

    # ----------------------------------------------------------------- run

    def run(self) -> dict:
        self.t_start, self.wall_offset = time.time(), 0.0
        self.train_time, self.tokens_timed = 0.0, 0
        prev = preflight.previous_summary(self.run_dir, self.hash, self.cfg.resume)
        if prev is not None and prev["status"] == "completed":
            log.info(f"{self.run_dir} is already complete; nothing to do")
            return prev
        preflight.on_all_ranks(self.world, self.device, self._check_writable)
        try:
            self._setup()
            preflight.on_all_ranks(self.world, self.device,
                                   lambda: preflight.check_space(self.run_dir, self.n_params, self.plan, self.cfg))
            self.step = start = self._restore()
            if self.is_main:
                # first: a logger whose package is missing fails before any record is written
                self.logger = loggers.open_logger(self.cfg.logger, self.run_dir, self.run_name,
                                                  to_dict(self.cfg), self.hash)
                records.atomic_write_text(self.run_dir / records.CONFIG_FILE, to_yaml(self.cfg))
                self.metrics = records.JsonlAppender(self.run_dir / records.METRICS_FILE, fsync=False)
            self.write_summary("running", start)
        except BaseException as e:
            loggers.close_logger(self.logger, ok=False)
            preflight.remove_created(self.created_dirs)
            err = diag.storage_error(e, self.run_dir, 0)
            if err is not None:
                raise err from None
            raise
        if self.is_main and start == 0 and self.before_training is not None:
            self.before_training(self.plan, self.device)
        plan, a = self.plan, self.plan.model
        ok = False
        reporter = Reporter(self.cfg.progress, plan, start, self.is_main)
        reporter.message(f"{self.run_name}: {a.preset} d={a.d_model} L={a.n_layers} H={a.n_heads} "
                         f"({self.n_params:,} params, {self.n_nonemb:,} non-embedding), {plan.total_steps} steps "
                         f"x {plan.batch_tokens} tokens on {preflight.device_name(self.device)}"
                         f"{f' x{self.world.size}' if self.world.active else ''}, kernels={self.kernels}"
                         f"{', activation checkpointing' if plan.activation_checkpointing else ''} -> "
                         f"{self.run_dir}")
        try:
            try:
                with self.stop.installed():
                    step = self.loop(start, reporter)
                if self.final_val is None:  # resumed from the final checkpoint: measure the end again
                    self.final_val = self.evaluate(step)
                if self.cfg.save_final:
                    self.save_checkpoint(step)
                ok = True
                return self.write_summary("completed", step)
            except Stop as stop:
                self.check_finite()  # a broken state is no checkpoint to resume from
                # a pre-emption grace period has no time for a second copy
                if self.checkpoints.saved_step != stop.step:
                    self.save_checkpoint(stop.step)
                ok = True  # stopped to resume, not failed
                reporter.message(f"SIGTERM: checkpointed at step {stop.step}; rerun the same command to resume")
                return self.write_summary("resumable", stop.step)
        except DivergenceError as e:
            self.nonfinite.write_diverged(self.run_name, self.hash)
            self.write_summary("diverged", self.step, error=str(e))
            raise
        except KeyboardInterrupt:
            self.write_summary("resumable", self.step, error="interrupted")  # the last checkpoint is intact
            raise
        except Exception as e:
            err = diag.storage_error(e, self.run_dir, self.step)
            if err is None:
                self.write_summary("failed", self.step, error=f"{type(e).__name__}: {e}".splitlines()[0])
                raise
            with contextlib.suppress(OSError):  # the disk that refused the record may refuse this too
                self.write_summary("failed", self.step, error=str(err))
            raise err from None
        finally:
            self.loader.close()
            reporter.close()
            loggers.close_logger(self.logger, ok)
            if self.metrics is not None:
                with contextlib.suppress(OSError):  # flushing into a full disk again must not mask the error
                    self.metrics.close()

    def loop(self, start: int, reporter: Reporter) -> int:
        """Steps start+1 .. total, each followed by evaluation, its metrics row, branches
        forking there, a periodic checkpoint and the SIGTERM check. Returns the last step.

        Between log steps nothing is read back from the device, so the host keeps queueing
        work: losses are read at log steps, the non-finite watch where a row, a branch or a
        checkpoint would otherwise carry a broken state forward."""
        plan, cfg = self.plan, self.cfg
        interval_t, interval_tok = 0.0, 0
        self.step = step = start
        while step < plan.total_steps:
            self.step = step = step + 1
            lr = self.lr(step)
            last = step == plan.total_steps
            logs = step % cfg.log_every == 0 or step in plan.eval_steps or last
            ckpts = bool(plan.ckpt_every) and step % plan.ckpt_every == 0 and not last
            t0 = time.perf_counter()
            loss, gnorm = self.train_step(step, lr)
            # the read waits for the steps queued since the last one, so it is timed with them
            if logs or self.read_every_step:
                loss_v, gnorm_v = self.read(loss, gnorm)
            elif ckpts or self.branches.forks_at(step):
                self.check_finite()
            dt = time.perf_counter() - t0
            self.train_time += dt
            self.tokens_timed += plan.batch_tokens
            interval_t, interval_tok = interval_t + dt, interval_tok + plan.batch_tokens
            val = self.evaluate(step) if step in plan.eval_steps else None
            row = None
            if logs:
                row = self._row(step, lr, self.global_mean(loss_v), gnorm_v, val, interval_tok / interval_t)
                interval_t, interval_tok = 0.0, 0
                self.last_train_loss = row["train_loss"]
                self.nonfinite.recent.append(row)
                if self.is_main:
                    self.metrics.append(row)
                    self.metrics_rows += 1
                    if self.logger is not None:  # the row's values are host floats already: no extra read
                        self.logger.log(row)
                    ckpt.fault_point("step", step)
            reporter.step(step, row)
            if last:
                self.final_val = val
            for end in self.branches.due(step):
                self.run_branch(step, end, reporter)
            if ckpts:
                self.save_checkpoint(step)
                self.write_summary("running", step)
            if not last and self.stop_asked(logs or ckpts or self.read_every_step):
                raise Stop(step)
        return step

    def run_branch(self, fork: int, end: int, reporter: Reporter) -> None:
        """The WSD cooldown from the state after step ``fork`` to step ``end``, trained on
        the main run's own batches and evaluated there; then the state at ``fork`` is put
        back, and the branch's row is kept (summary, ``branches.jsonl``, progress line)."""
        with self.branches.forked(fork, end, self.raw, self.opt, self.nonfinite):
            loss = None
            for s in range(fork + 1, end + 1):
                loss, _ = self.train_step(s, self.lr(s, branch=(fork, end)))
            self.check_finite()
            val = self.evaluate(end)
            loss = self.global_mean(loss)
        row = self.branches.row(fork, end, val, loss, self.val_bytes_per_token)
        self.branches.record(row)
        reporter.message(f"branch {fork}->{end}: {row['tokens']:,} tokens, val {val:.4f}")
        self.write_summary("running", self.step)

    def stop_asked(self, synced: bool) -> bool:
        """Whether SIGTERM asked this run to stop, on every rank at once. Alone, that is a
        flag the handler set, read after every step; under torchrun the ranks must agree,
        which takes a collective, so they ask only at log and checkpoint steps: a
        pre-empted run checkpoints within ``log_every`` steps of the signal."""
        if not self.world.active:
            return self.stop.asked
        return synced and D.any_rank(self.world, self.stop.asked, self.device)

    # ----------------------------------------------------------------- steps

    def lr(self, step: int, branch: Optional[tuple] = None) -> float:
        """The learning rate of ``step``: the run's schedule, or inside a branch ``(fork,
        end)`` a WSD cooldown from ``fork`` to ``end``."""
        s, p = self.cfg.schedule, self.plan
        if branch is None:
            f = lr_factor(step, p.warmup_steps, p.decay_start, p.total_steps, s.kind, s.final_lr_frac,
                          s.cooldown_shape)
        else:
            f = lr_factor(step, p.warmup_steps, branch[0], branch[1], ScheduleKind.wsd, s.final_lr_frac,
                          s.cooldown_shape)
        return self.cfg.optim.lr * f

    def train_step(self, step: int, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step on step's global batch; (mean loss on this rank, grad norm),
        left on the device (:meth:`read`). With ``on_nonfinite=skip`` the step must know
        before the update whether to skip it, so that mode reads both back every step;
        with ``stop`` the :class:`~scaling.train.diagnostics.NonFiniteWatch` keeps them."""
        p, w = self.plan, self.world
        mine = self.loader.get(step)  # this rank's rows, ids checked, on the host
        for g in self.opt.param_groups:
            g["lr"] = lr
        loss_sum = torch.zeros((), device=self.device)
        for i in range(p.grad_accum):
            mb = mine[i * p.micro_batch:(i + 1) * p.micro_batch].to(self.device, non_blocking=True).long()
            # gradients are all-reduced once, on the last micro-batch
            sync = (self.model.no_sync() if w.active and i < p.grad_accum - 1 and hasattr(self.model, "no_sync")
                    else contextlib.nullcontext())
            with sync, self.autocast:
                # training minimises the cross-entropy plus the z-loss; validation reports the cross-entropy
                loss = self.model(mb[:, :-1], mb[:, 1:], z_loss=self.cfg.optim.z_loss)
            (loss / p.grad_accum).backward()
            loss_sum += loss.detach().float()
        gnorm, norms, names = self.clip_gradients()
        loss_mean = loss_sum / p.grad_accum
        if self.cfg.on_nonfinite == OnNonFinite.stop:
            self.watch.update(step, loss_mean, gnorm, norms, names)
        else:
            loss_v, gnorm_v = self.read(loss_mean, gnorm)  # the one host read a step of this mode
            if not (math.isfinite(loss_v) and math.isfinite(gnorm_v)):
                what = "loss" if not math.isfinite(loss_v) else "gradient norm"
                grads = diag.nonfinite_names((n, p.grad) for n, p in self.raw.named_parameters())
                batch = self.corpus.train.sample(self.cfg.seed, step, p.batch_seqs, self.cfg.seq_len)
                self.nonfinite.record(
                    step, what, loss_v, self.branches.active, grad_norm=diag.num(gnorm_v), lr=lr,
                    batch=diag.batch_record(self.cfg.seed, step, batch, self.cfg.seq_len), nonfinite_grads=grads)
                self.opt.zero_grad(set_to_none=True)
                self.nonfinite.skipped(self.branches.active)
                log.warning(f"step {step}: non-finite {what}, update skipped")
                return loss_mean, gnorm
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return loss_mean, gnorm

    def clip_gradients(self) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        """Clip the gradients to ``optim.grad_clip`` by their global norm; (that norm, each
        parameter's gradient norm, the parameters' names). The same arithmetic as
        ``torch.nn.utils.clip_grad_norm_`` (so the same bits), keeping the per-parameter
        norms it computes on the way for the non-finite watch."""
        named = [(n, q.grad) for n, q in self.named_params if q.grad is not None]
        grads = [g for _, g in named]
        clip = self.cfg.optim.grad_clip if self.cfg.optim.grad_clip > 0 else float("inf")
        if len({(g.device, g.dtype) for g in grads}) != 1:  # torch groups these, in its own order
            norms = torch.stack([torch.linalg.vector_norm(g.detach()).float() for g in grads])
            return torch.nn.utils.clip_grad_norm_(self.params, clip), norms, [n for n, _ in named]
        with torch.no_grad():
            norms = torch.stack(torch._foreach_norm(grads, 2.0))
            gnorm = torch.linalg.vector_norm(norms, 2.0)
            torch._foreach_mul_(grads, torch.clamp(clip / (gnorm + 1e-6), max=1.0))
        return gnorm, norms, [n for n, _ in named]

    def read(self, loss: torch.Tensor, gnorm: torch.Tensor) -> tuple[float, float]:
        """Loss and gradient norm on the host, in one read that also checks the
        non-finite watch (and raises, naming the first bad step)."""
        loss_v, gnorm_v, bad = torch.stack([loss.double(), gnorm.double(), self.watch.step.double()]).tolist()
        if bad:
            self.raise_nonfinite(int(bad))
        return loss_v, gnorm_v

    def check_finite(self) -> None:
        """Raise DivergenceError if any step since the start was non-finite (one read)."""
        bad = self.watch.first()
        if bad:
            self.raise_nonfinite(bad)

    def raise_nonfinite(self, step: int) -> None:
        """The divergence of ``on_nonfinite=stop``: record the first bad step and raise.
        Its batch is drawn again from (seed, step); the steps after it changed nothing
        that is kept (no row, checkpoint or branch is written past it)."""
        loss_v, gnorm_v, grads = self.watch.details()
        what = "loss" if not math.isfinite(loss_v) else "gradient norm"
        lr = self.lr(step, branch=self.branches.active)
        batch = self.corpus.train.sample(self.cfg.seed, step, self.plan.batch_seqs, self.cfg.seq_len)
        self.nonfinite.record(
            step, what, loss_v, self.branches.active, grad_norm=diag.num(gnorm_v), lr=lr,
            batch=diag.batch_record(self.cfg.seed, step, batch, self.cfg.seq_len), nonfinite_grads=grads)
        if not self.branches.active:
            self.step = step
        raise DivergenceError(f"non-finite {what} at step {step} (lr {lr:.3g}, loss {loss_v:.4g}, "
                              f"grad norm {gnorm_v:.4g}); details in {DIVERGED_FILE}", field="step",
                              fix="lower optim.lr, raise warmup, or set on_nonfinite=skip")

    @torch.no_grad()
    def evaluate(self, step: int) -> float:
        """Mean validation loss over the fixed held-out windows (split across ranks), after ``step``."""
        mine = self.val_windows[self.world.rank::self.world.size]
        tot = torch.zeros(2, dtype=torch.float64, device=self.device)
        bs = self.plan.micro_batch
        for i in range(0, len(mine), bs):
            mb = mine[i:i + bs].to(self.device)
            with self.autocast:
                loss = self.raw(mb[:, :-1], mb[:, 1:])
            tot[0] += loss.double() * len(mb)
            tot[1] += len(mb)
        D.all_reduce_sum(self.world, tot)
        val = float(tot[0] / tot[1])
        if not math.isfinite(val):  # the weights themselves are broken; skipping cannot help
            bad = diag.nonfinite_names(self.raw.named_parameters())
            self.nonfinite.record(step, "validation loss", val, self.branches.active, nonfinite_params=bad)
            raise DivergenceError(f"non-finite validation loss after step {step}; details in {DIVERGED_FILE}",
                                  field="step", fix="lower optim.lr or raise the warmup")
        return val

    def global_mean(self, x) -> float:
        """The mean of ``x`` (a float or a one-element tensor) over the ranks."""
        x = float(x)
        if not self.world.active:
            return x
        t = D.all_reduce_sum(self.world, torch.tensor([x], dtype=torch.float64, device=self.device))
        return float(t.item()) / self.world.size

    # ----------------------------------------------------------------- set-up

    def _check_writable(self) -> None:
        self.created_dirs = preflight.check_writable(self.run_dir)

    def _restore(self) -> int:
        """Continue from the checkpoint ``resume=`` picks, if any (into the model, the
        optimizer and the helpers' state); the start step."""
        got = self.checkpoints.restore(self.raw, self.opt, self.branches, self.nonfinite)
        self.wall_offset, self.last_train_loss = got.wall_offset, got.last_train_loss
        self.metrics_rows, self.lost_metric_rows = got.metrics_rows, got.lost_metric_rows
        return got.step

    def save_checkpoint(self, step: int) -> None:
        """A checkpoint of the state after ``step``: model, optimizer, RNGs, the helpers'
        state and the run's counters (:meth:`scaling.train.resume.Checkpointer.save`)."""
        self.checkpoints.save(step, model=self.raw, optimizer=self.opt, tokens=step * self.plan.batch_tokens,
                              wall_time=self.wall(), branches=self.branches, nonfinite=self.nonfinite,
                              last_train_loss=self.last_train_loss, metrics=self.metrics,
                              metrics_rows=self.metrics_rows)

    def _setup(self) -> None:
        cfg, plan = self.cfg, self.plan  # the Plan was resolved before any data is read: a bad config failed then
        if self.is_main:  # rank 0 tokenizes; the others then map its cache
            self.corpus = load_corpus(cfg.data)
        D.barrier(self.world)
        if not self.is_main:
            self.corpus = load_corpus(cfg.data, build=False)
        if self.corpus.vocab_size != self.data_vocab:  # scaling.data.corpus.data_vocab must foresee the loader
            raise AssertionError(f"the data's vocabulary {self.corpus.vocab_size} != the {self.data_vocab} "
                                 "the plan was resolved with")
        self.corpus = restrict_unique(self.corpus, cfg.data, cfg.seq_len, plan.tokens, F.count_params(plan.model))
        self.unique = self.corpus.meta.get("unique_tokens")
        for w in data_warnings(plan.model, plan.tokens, self.corpus.train.n_tokens, cfg.data) if self.is_main else ():
            log.warning(w)
        self.corpus.train.require_window(cfg.seq_len)  # before any model is built or record written
        per_rank = plan.batch_seqs // self.world.size
        self.loader = Loader(self.corpus.train, cfg.seed, plan.batch_seqs, cfg.seq_len,
                             slice(self.world.rank * per_rank, (self.world.rank + 1) * per_rank),
                             self.corpus.vocab_size, pin=self.device.type == "cuda", last_step=plan.total_steps,
                             prefetch=self.prefetch)
        val = self.corpus.val.windows(cfg.seq_len, cfg.data.val_tokens)
        diag.check_tokens(val, self.corpus.vocab_size, "the validation set")
        self.val_windows = torch.from_numpy(val)
        # bits per byte (Gao et al. 2020): the bytes of text the validation loss averages
        # over, per token; None where the text is unknown (pre-tokenized shards)
        val_bytes = predicted_bytes(val, self.corpus.token_bytes)
        self.val_bytes_per_token = val_bytes / val[:, 1:].size if val_bytes else None
        a = plan.model
        self.kernels = kernels = preflight.choose_kernels(cfg.kernels, self.device)

        torch.manual_seed(cfg.seed)
        self.raw = Transformer(a, kernels=kernels, checkpointing=plan.activation_checkpointing).to(self.device)
        self.named_params = [(n, p) for n, p in self.raw.named_parameters() if p.requires_grad]
        self.params = [p for _, p in self.named_params]
        self.watch = diag.NonFiniteWatch(self.device, len(self.params))
        model = self.raw
        if self.world.active:
            from torch.nn.parallel import DistributedDataParallel as DDP

            model = DDP(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.compiled = cfg.compile or kernels == "compile"
        if self.compiled:
            model = torch.compile(model)
        self.model = model

        o = cfg.optim
        fused = o.fused if o.fused is not None else self.device.type == "cuda"
        self.opt = torch.optim.AdamW(self.raw.param_groups(o.weight_decay), lr=o.lr, betas=(o.beta1, o.beta2),
                                     eps=o.eps, **({"fused": True} if fused else {}))
        self.autocast = (torch.autocast(self.device.type, dtype=torch.bfloat16)
                         if self.precision == "bf16" else contextlib.nullcontext())

        self.n_params = F.count_params(a)
        self.n_nonemb = F.nonembedding_params(a)
        if self.n_params != self.raw.num_params():  # the accounting must describe the module exactly
            raise AssertionError(f"parameter accounting {self.n_params} != module {self.raw.num_params()}")
        peak = cfg.peak_flops
        if peak is None and self.device.type == "cuda":
            peak = F.peak_flops_for(torch.cuda.get_device_name(self.device), self.precision)
        self.peak_flops = peak
        self.palm_per_token = F.palm_flops_per_token(a)

    # ----------------------------------------------------------------- records

    def _row(self, step: int, lr: float, loss: float, gnorm: float, val: Optional[float], tps: float) -> dict:
        tokens = step * self.plan.batch_tokens
        row = {"step": step, "tokens": tokens, "flops_6n": tokens * self.plan.flops_6n_per_token,
               "flops": tokens * self.plan.flops_per_token, "lr": lr, "train_loss": loss, "grad_norm": gnorm,
               "tokens_per_s": tps, "wall_time": self.wall()}
        if val is not None:
            row["val_loss"] = val
            if self.val_bytes_per_token:
                row["val_bpb"] = self.bits_per_byte(val)
        if self.unique:  # a data-constrained run: passes over its unique tokens so far
            row["epochs"] = tokens / self.unique
        if self.peak_flops:
            row["mfu"] = self.palm_per_token * tps / (self.peak_flops * self.world.size)
        return row

    def bits_per_byte(self, loss: Optional[float]) -> Optional[float]:
        """A validation loss (nats per token) in bits per byte of the held-out text;
        None where either is unknown (:func:`analysis.common.records.bits_per_byte`)."""
        return records.bits_per_byte(loss, self.val_bytes_per_token)

    def _summary(self, status: str, step: int, error: Optional[str] = None) -> dict:
        a, plan = self.plan.model, self.plan
        trained = step * plan.batch_tokens
        return {
            "schema_version": records.SCHEMA_VERSION,
            "run_name": self.run_name,
            "status": status,
            "params": self.n_params,
            "params_nonembedding": self.n_nonemb,
            "tokens": plan.tokens,
            "tokens_trained": trained,
            "steps": plan.total_steps,
            "steps_trained": step,
            "batch_tokens": plan.batch_tokens,
            "flops": trained * plan.flops_per_token,
            "flops_6n": trained * plan.flops_6n_per_token,
            "flops_per_token": plan.flops_per_token,
            "final_val_loss": self.final_val if status == "completed" else None,
            "final_val_bpb": self.bits_per_byte(self.final_val) if status == "completed" else None,
            "val_bytes_per_token": self.val_bytes_per_token,
            "final_train_loss": self.last_train_loss,
            "branches": list(self.branches.rows),
            "model": {"preset": a.preset, "d_model": a.d_model, "n_layers": a.n_layers, "n_heads": a.n_heads,
                      "n_kv_heads": a.n_kv_heads, "ffn_hidden": a.ffn_hidden, "vocab_size": a.vocab_size,
                      "seq_len": a.seq_len, "tie_embeddings": a.tie_embeddings},
            "data": {k: self.corpus.meta.get(k) for k in ("source", "tokenizer", "vocab_size", "cache")}
            | {"train_tokens": self.corpus.train.n_tokens, "val_tokens": self.corpus.val.n_tokens},
            "unique_tokens": self.unique,
            "epochs": trained / (self.unique or self.corpus.train.n_tokens),
            "config_hash": self.hash,
            "versions": {"python": platform.python_version(), "torch": torch.__version__, "toolkit": __version__},
            "device": preflight.device_name(self.device),
            "world_size": self.world.size,
            "kernels": self.kernels,
            "compile": self.compiled,
            "precision": self.precision,
            "skipped_steps": self.nonfinite.skipped_steps,
            "lost_metric_rows": self.lost_metric_rows,
            "tokens_per_s": (self.tokens_timed / self.train_time) if self.train_time > 0 else None,
            "error": error,
            "wall_time": self.wall(),
        }

    def write_summary(self, status: str, step: int, error: Optional[str] = None) -> dict:
        s = self._summary(status, step, error)
        if self.is_main:
            records.atomic_write_json(self.run_dir / records.SUMMARY_FILE, s)
        return s

    def wall(self) -> float:
        """Seconds of wall time the run has taken, across resumes."""
        return self.wall_offset + (time.time() - self.t_start)
