"""Activation checkpointing (``activation_checkpointing=true``, one ``torch.utils.checkpoint``
per block): the same losses and gradients as without it, for every kernel set, in the
trainer and across a resume; outside the run's identity; and what the memory plan
expects of it for the shipped GPU ladder."""
import contextlib

import pytest
import torch

from analysis.common import records
from scaling import config as C
from scaling import memory as MEM
from scaling.kernels import _utils as U
from scaling.train.run import train
from kernel_testing import assert_compiled_matches_eager
from trainer_testing import losses, run, tiny_overrides


def _args(**kw):
    base = dict(d_model=64, n_layers=3, n_heads=4, n_kv_heads=2, ffn_hidden=160, vocab_size=97, seq_len=16)
    base.update(kw)
    return C.ModelArgs(**base)


def _loss_and_grads(a, checkpointing, kernels="eager", dtype=torch.float64, bf16=False, z_loss=0.0):
    from scaling.model import Transformer

    torch.manual_seed(0)
    model = Transformer(a, kernels=kernels, checkpointing=checkpointing).to(dtype)
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(0, a.vocab_size, (3, a.seq_len), generator=g)
    tgt = torch.randint(0, a.vocab_size, (3, a.seq_len), generator=g)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with ctx:
        loss = model(idx, tgt, z_loss=z_loss)
    loss.backward()
    return loss.detach(), {n: p.grad for n, p in model.named_parameters()}


def _assert_same(a, b, rtol=0.0, atol=0.0):
    assert torch.allclose(a[0], b[0], rtol=rtol, atol=atol), (a[0], b[0])
    assert a[1].keys() == b[1].keys()
    for n in a[1]:
        assert torch.allclose(a[1][n], b[1][n], rtol=rtol, atol=atol), n


@pytest.mark.parametrize("over,z_loss", [({}, 0.0), (dict(n_kv_heads=4, tie_embeddings=False), 1e-3)])
def test_eager_float64_losses_and_gradients_equal_those_without(over, z_loss):
    a = _args(**over)
    plain = _loss_and_grads(a, False, z_loss=z_loss)
    recomputed = _loss_and_grads(a, True, z_loss=z_loss)
    # recomputation runs the same ops on the same inputs: the same bits
    _assert_same(plain, recomputed)
    # and the gradient is the gradient: a central difference on one weight agrees
    from scaling.model import Transformer

    torch.manual_seed(0)
    m = Transformer(a, checkpointing=True).double()
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(0, a.vocab_size, (3, a.seq_len), generator=g)
    tgt = torch.randint(0, a.vocab_size, (3, a.seq_len), generator=g)
    w = m.blocks[1].mlp.down.weight
    h = 1e-4
    with torch.no_grad():
        w[0, 0] += h
        up = m(idx, tgt, z_loss=z_loss).item()
        w[0, 0] -= 2 * h
        down = m(idx, tgt, z_loss=z_loss).item()
    assert (up - down) / (2 * h) == pytest.approx(recomputed[1]["blocks.1.mlp.down.weight"][0, 0].item(), rel=1e-5)


def test_bf16_autocast_matches_without():
    # autocast is re-entered for the recomputation, so the recomputed casts are the same
    _assert_same(_loss_and_grads(_args(), False, dtype=torch.float32, bf16=True),
                 _loss_and_grads(_args(), True, dtype=torch.float32, bf16=True))


def test_triton_kernels_match_without():
    if not (U.INTERPRET or torch.cuda.is_available()):
        pytest.skip("the triton kernels run on CPU through the interpreter only")
    if not U.INTERPRET:
        pytest.skip("this test runs the kernels on CPU tensors, through the interpreter")
    a = _args(n_layers=2, d_model=32, n_heads=2, n_kv_heads=1, ffn_hidden=64, vocab_size=61, seq_len=8)
    plain = _loss_and_grads(a, False, kernels="triton", dtype=torch.float32)
    recomputed = _loss_and_grads(a, True, kernels="triton", dtype=torch.float32)
    _assert_same(plain, recomputed, rtol=1e-6, atol=1e-7)


def test_evaluation_without_gradients_is_unchanged():
    # evaluation runs under no_grad: nothing is kept, so the blocks run plainly
    from scaling.model import Transformer

    a = _args()
    torch.manual_seed(0)
    m = Transformer(a, checkpointing=True)
    torch.manual_seed(0)
    plain = Transformer(a)
    idx = torch.randint(0, a.vocab_size, (2, a.seq_len), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = m(idx, idx)
        assert torch.equal(out, plain(idx, idx)) and out.grad_fn is None


def test_the_trainer_with_checkpointing_logs_the_same_run(cache, tmp_path):
    a = run(cache, tmp_path / "a", "tokens=8192", "optim.grad_clip=0.5", "micro_batch=8")
    b = run(cache, tmp_path / "b", "tokens=8192", "optim.grad_clip=0.5", "micro_batch=8",
            "activation_checkpointing=true")
    assert losses(tmp_path / "a") == losses(tmp_path / "b")
    assert losses(tmp_path / "a", "grad_norm") == losses(tmp_path / "b", "grad_norm")
    assert a["final_val_loss"] == b["final_val_loss"]
    assert (a["run_name"], a["config_hash"]) == (b["run_name"], b["config_hash"])


def test_resume_with_checkpointing_turned_on_is_exact(cache, tmp_path):
    # a run checkpointed without recomputation resumes with it (say, on a smaller GPU) and
    # logs exactly the rows the uninterrupted run did
    extra = ("tokens=16384", "ckpt_every_tokens=8192", "keep_checkpoints=3")
    ref = tmp_path / "ref"
    run(cache, ref, *extra)
    from scaling import checkpoint as ckpt

    mid = [p for p in ckpt.list_checkpoints(ref) if p.stem.endswith("00000008")]
    assert mid, ckpt.list_checkpoints(ref)
    out = tmp_path / "resumed"
    train(C.from_overrides(tiny_overrides(cache, out, *extra, "activation_checkpointing=true", f"resume={mid[0]}")))
    assert [r["step"] for r in records.read_metrics(out)] == list(range(9, 17))
    assert losses(out) == losses(ref)[8:]


#: Hashes of configs as the code before activation checkpointing computed them: the new
#: field must leave every existing run's identity alone, at either value.
PINNED = [
    (["model=nano", "tokens=1e6"], "01d645a0b9b4ddf0"),
    (["model=small", "tokens_per_param=20", "kernels=triton", "micro_batch=4", "precision=bf16"], "99872c99bd6eaaac"),
    (["model=85m", "flops=1e18", "schedule.kind=wsd", "seq_len=1024", "data.tokenizer=bpe",
      "data.vocab_size=50257"], "cc39a9567cb18534"),
]


@pytest.mark.parametrize("overrides,digest", PINNED, ids=["nano", "small-triton", "85m-wsd"])
def test_config_hashes_are_unchanged_with_or_without_it(overrides, digest):
    for extra in ([], ["activation_checkpointing=false"], ["activation_checkpointing=true"]):
        assert C.config_hash(C.from_overrides(overrides + extra)) == digest, extra


def test_llama_ladder_run_names_are_unchanged():
    from sweeps.launch import compose
    from sweeps.naming import run_name, split_job_config

    data = ["data.source=/data/shards", "data.vocab_size=50257"]
    for model, name in (("85m", "model=85m,tpp=200-63f31df5"), ("1b", "model=1b,tpp=200-09042ece")):
        for extra in ([], ["activation_checkpointing=true"]):
            tc, _ = split_job_config(compose("llama_ladder", data + [f"model={model}"] + extra))
            assert run_name(tc) == name, (model, extra)


#: An "80 GB" GPU, as sold: 80e9 bytes (an H100's total_memory is a little more).
GPU_80GB = 80 * 10**9


@pytest.mark.parametrize("world", [8, 1])
def test_llama_ladder_fits_an_80gb_gpu_at_every_size(world):
    from sweeps.launch import compose
    from sweeps.naming import split_job_config

    data = ["data.source=/data/shards", "data.vocab_size=50257"]
    usable = (GPU_80GB - MEM.DEVICE_RESERVE_BYTES) * 0.9
    for model in ("85m", "300m", "680m", "1b"):
        tc, _ = split_job_config(compose("llama_ladder", data + [f"model={model}"]))
        assert tc.micro_batch == "auto"
        plan = C.resolve(tc, 50257, world, device_bytes=GPU_80GB)
        est = MEM.estimate_memory(tc, vocab_size=50257, world_size=world, micro_batch=plan.micro_batch,
                                  checkpointing=plan.activation_checkpointing)
        assert est.peak <= usable, (model, world, MEM.format_estimate(est))
        assert plan.micro_batch * plan.grad_accum * world == plan.batch_seqs  # the global batch is kept
        # at the whole share, without the plan, the larger sizes would not fit
        if model in ("680m", "1b"):
            assert MEM.estimate_memory(tc, vocab_size=50257, world_size=world, checkpointing=False).peak > usable


#: 64 sequences of 2048 tokens of a 12-layer d=768 model.
BIG = ["model=small", "tokens=1e9", "seq_len=2048", "batch_tokens=131072", "data.tokenizer=bpe",
       "data.vocab_size=50257", "micro_batch=auto"]


def test_auto_turns_checkpointing_on_only_where_nothing_fits_without_it():
    cfg = C.from_overrides(BIG)
    plain, recomputed = (MEM.estimate_memory(cfg, vocab_size=50257, micro_batch=1, checkpointing=c).peak
                         for c in (False, True))
    assert recomputed < plain
    between = MEM.DEVICE_RESERVE_BYTES + int((plain + recomputed) / 2 / 0.9)
    plan = C.resolve(cfg, 50257, 1, device_bytes=between)
    assert plan.activation_checkpointing
    assert MEM.estimate_memory(cfg, vocab_size=50257, micro_batch=plan.micro_batch,
                               checkpointing=True).peak <= (between - MEM.DEVICE_RESERVE_BYTES) * 0.9
    roomy = C.resolve(cfg, 50257, 1, device_bytes=80 << 30)
    assert not roomy.activation_checkpointing
    # asked for, auto sizes the micro-batch with it: at least as large as without
    asked = C.resolve(C.from_overrides(BIG + ["activation_checkpointing=true"]), 50257, 1, device_bytes=16 << 30)
    assert asked.activation_checkpointing
    assert asked.micro_batch >= C.resolve(cfg, 50257, 1, device_bytes=16 << 30).micro_batch



def test_compiled_triton_model_with_checkpointing_matches_eager_without():
    # torch.compile traces each checkpointed block as one region (fullgraph: no graph
    # break), with the Triton custom ops inside it
    if not U.INTERPRET:
        pytest.skip("this test runs the kernels on CPU tensors, through the interpreter")
    from scaling.model import Transformer

    torch._dynamo.reset()
    a = _args(n_layers=2, d_model=32, n_heads=4, n_kv_heads=2, ffn_hidden=48, vocab_size=37, seq_len=8)
    torch.manual_seed(0)
    eager = Transformer(a)
    ours = Transformer(a, kernels="triton", checkpointing=True)
    ours.load_state_dict(eager.state_dict())
    g = torch.Generator().manual_seed(1)
    idx, tgt = (torch.randint(0, a.vocab_size, (2, a.seq_len), generator=g) for _ in range(2))
    assert_compiled_matches_eager(eager, ours, idx, tgt)
    torch._dynamo.reset()
