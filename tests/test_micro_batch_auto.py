"""micro_batch=auto: the largest micro-batch the memory plan fits on the run's GPU, the
whole share where no GPU is known, outside the run's identity either way."""
import pytest

from analysis.common.errors import ConfigError
from scaling import config as C
from scaling import memory as MEM
from scaling.app.cli import main as cli_main
from trainer_testing import losses, run

#: 64 sequences of 2048 tokens of a 12-layer d=768 model: about 25 GiB at the whole share.
BIG = ["model=small", "tokens=1e9", "seq_len=2048", "batch_tokens=131072", "data.tokenizer=bpe",
       "data.vocab_size=50257"]


def _cfg(*extra):
    return C.from_overrides(BIG + list(extra))


def test_auto_is_the_memory_plans_choice_on_a_gpu_and_the_whole_share_elsewhere():
    for world in (1, 2):
        per_rank = 64 // world
        assert C.resolve(_cfg("micro_batch=auto"), 50257, world).micro_batch == per_rank
        for gib in (8, 16, 40):
            device = gib << 30
            want = MEM.pick_micro_batch(_cfg(), device, vocab_size=50257, world_size=world)
            plan = C.resolve(_cfg("micro_batch=auto"), 50257, world, device_bytes=device)
            assert (plan.micro_batch, plan.grad_accum) == (want.micro_batch, want.grad_accum)
            assert MEM.estimate_memory(_cfg(), vocab_size=50257, world_size=world,
                                       micro_batch=plan.micro_batch).peak <= want.usable_bytes
    # smaller devices get smaller micro-batches; the global batch is unchanged
    small = C.resolve(_cfg("micro_batch=auto"), 50257, 1, device_bytes=8 << 30)
    large = C.resolve(_cfg("micro_batch=auto"), 50257, 1, device_bytes=40 << 30)
    assert small.micro_batch < large.micro_batch and small.batch_seqs == large.batch_seqs == 64


def test_auto_checkpoints_where_only_that_fits_and_refuses_a_device_too_small_for_one_sequence():
    plain, recomputed = (MEM.estimate_memory(_cfg(), vocab_size=50257, micro_batch=1, checkpointing=c).peak
                         for c in (False, True))
    between = MEM.DEVICE_RESERVE_BYTES + int((plain + recomputed) / 2 / 0.9)
    plan = C.resolve(_cfg("micro_batch=auto"), 50257, 1, device_bytes=between)
    assert plan.activation_checkpointing and plan.micro_batch >= 1
    with pytest.raises(ConfigError, match="^micro_batch: one sequence of 2048 tokens needs"):
        C.resolve(_cfg("micro_batch=auto"), 50257, 1, device_bytes=MEM.DEVICE_RESERVE_BYTES + (1 << 20))


def test_auto_keeps_the_run_name_and_hash():
    default, auto = _cfg(), _cfg("micro_batch=auto")
    assert C.config_hash(auto) == C.config_hash(default)
    assert (C.default_run_name(auto, C.resolve(auto, 50257, 1, device_bytes=16 << 30))
            == C.default_run_name(default, C.resolve(default, 50257, 1)))


@pytest.mark.parametrize("bad", ["micro_batch=automatic", "micro_batch=0", "micro_batch=2.5"])
def test_bad_micro_batch_is_one_line_naming_the_field(bad, capsys):
    assert cli_main(["train", "model=nano", "tokens=1e6", bad, "--show-config"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "micro_batch" in err


def test_show_config_prints_the_memory_estimate(capsys):
    assert cli_main(["train", *BIG, "micro_batch=16", "--show-config"]) == 0
    out = capsys.readouterr().out
    est = MEM.estimate_memory(_cfg(), vocab_size=50257, micro_batch=16)
    assert f"# memory per GPU (scaling.memory's estimate, docs/kernels.md): {MEM.format_estimate(est)}\n" in out
    assert "micro_batch 16 x 2048" in out and "checkpointing" not in out.split("# memory per GPU")[1]


def test_show_config_says_when_auto_turned_checkpointing_on(capsys, monkeypatch):
    import torch

    plain, recomputed = (MEM.estimate_memory(_cfg(), vocab_size=50257, micro_batch=1, checkpointing=c).peak
                         for c in (False, True))
    between = MEM.DEVICE_RESERVE_BYTES + int((plain + recomputed) / 2 / 0.9)

    class Props:
        total_memory = between

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: Props)
    assert cli_main(["train", *BIG, "micro_batch=auto", "--show-config"]) == 0
    out = capsys.readouterr().out
    assert '"activation_checkpointing": true' in out
    assert "# micro_batch=auto turned on activation checkpointing" in out
    assert out.split("# memory per GPU")[1].splitlines()[0].endswith(", checkpointing)")


def test_auto_on_cpu_trains_exactly_as_the_default(cache, tmp_path):
    a = run(cache, tmp_path / "a", "tokens=4096")
    b = run(cache, tmp_path / "b", "tokens=4096", "micro_batch=auto")
    assert a["run_name"] == b["run_name"] and a["config_hash"] == b["config_hash"]
    assert losses(tmp_path / "a") == losses(tmp_path / "b")
