"""Whole-stack kernel checks: a tiny model trained a few steps with kernels=triton matches
kernels=eager, and every kernel compiles for a Hopper GPU (no GPU needed for that)."""
import copy
import os
import subprocess
import sys

import pytest
import torch

from analysis.common.errors import ConfigError
from scaling.kernels import _utils as U
from scaling.kernels import get_ops, resolve_kernels

from kernel_testing import (  # noqa: F401 (the fixture is autouse: poisoned outputs everywhere)
    CUDA, DEVICES, gpu_only, poisoned_outputs_exact_fp32)


def _tiny_args(**kw):
    from scaling.config import ModelArgs

    # Odd sizes on purpose: vocab and MLP width not powers of two, grouped-query heads.
    base = dict(d_model=48, n_layers=2, n_heads=4, n_kv_heads=2, ffn_hidden=72, vocab_size=97, seq_len=16)
    base.update(kw)
    return ModelArgs(**base)


def _batch(args, B, device, seed):
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, args.vocab_size, (B, args.seq_len), generator=g)
    tgt = torch.randint(0, args.vocab_size, (B, args.seq_len), generator=g)
    tgt[:, -3:] = -100  # padding at the end of each row
    return idx.to(device), tgt.to(device)


def _train(model, batches, lr=1e-2):
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)
    losses, first_grads = [], None
    for idx, tgt in batches:
        loss = model(idx, tgt)
        loss.backward()
        if first_grads is None:
            first_grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses, first_grads


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
def test_triton_training_matches_eager(device, tie):
    from scaling.model import Transformer

    torch.manual_seed(0)
    args = _tiny_args(tie_embeddings=tie)
    eager = Transformer(args, kernels="eager").to(device)
    triton_model = Transformer(args, kernels="triton").to(device)
    triton_model.load_state_dict(copy.deepcopy(eager.state_dict()))
    # One batch seen repeatedly: the loss must fall, so the steps really train.
    batches = [_batch(args, 2, device, seed=1)] * 5

    e_losses, e_grads = _train(eager, batches)
    t_losses, t_grads = _train(triton_model, batches)

    # Every gradient of the first step agrees to float32 rounding.
    for name, g in e_grads.items():
        assert U.rel_err(t_grads[name], g) < 1e-5, name
    # And the trajectories stay together over the following steps.
    assert e_losses[-1] < e_losses[0] - 0.5  # it is really training
    torch.testing.assert_close(torch.tensor(t_losses), torch.tensor(e_losses), rtol=1e-5, atol=1e-6)
    for (name, pe), pt in zip(eager.named_parameters(), triton_model.parameters()):
        torch.testing.assert_close(pt, pe, rtol=1e-3, atol=1e-4, msg=name)


@gpu_only
def test_bf16_autocast_training_tracks_eager():
    from scaling.model import Transformer

    torch.manual_seed(0)
    args = _tiny_args(d_model=256, n_layers=4, n_heads=4, n_kv_heads=4, ffn_hidden=704, vocab_size=5003,
                      seq_len=128)
    eager = Transformer(args, kernels="eager").cuda()
    ours = Transformer(args, kernels="triton").cuda()
    ours.load_state_dict(copy.deepcopy(eager.state_dict()))
    batches = [_batch(args, 8, "cuda", seed=1)] * 10
    with torch.autocast("cuda", dtype=torch.bfloat16):
        e_losses, _ = _train(eager, batches)
        t_losses, _ = _train(ours, batches)
    assert e_losses[-1] < e_losses[0] - 0.1
    for e, t in zip(e_losses, t_losses):
        assert abs(e - t) < 2e-2 * abs(e)


def test_kernel_choice():
    assert resolve_kernels("auto", "cuda") == "triton"
    assert resolve_kernels("auto", "cpu") == "eager"  # compile pays off on GPUs only
    assert [resolve_kernels(k, "cpu") for k in ("eager", "compile", "triton")] == ["eager", "compile", "triton"]
    ops = get_ops("triton")
    from scaling.kernels.cross_entropy import fused_linear_cross_entropy

    assert ops.linear_cross_entropy is fused_linear_cross_entropy
    with pytest.raises(ConfigError, match="kernels"):
        resolve_kernels("fast", "cuda")


def test_every_kernel_compiles_for_hopper_with_wide_accesses_and_no_spills():
    # The interpreter does not type-check like the compiler does, so compile each kernel
    # ahead of time for sm_90 with Triton's bundled ptxas, at the launch parameters the
    # wrappers choose for the ~124M model.
    pytest.importorskip("triton.backends.nvidia.compiler")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    res = subprocess.run([sys.executable, "-m", "scaling.app.bench.kernels", "--compile-only", "90"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = [ln.split() for ln in res.stdout.splitlines() if ln.startswith(("rms_norm", "swiglu", "rope", "ce_"))]
    assert len(lines) == 6, res.stdout
    for cols in lines:
        name, regs, spills, loads16 = cols[0], int(cols[-5]), int(cols[-4]), int(cols[-3])
        assert spills == 0, name
        assert regs <= 128, name  # at least 16 resident warps per SM
        assert loads16 > 0, name  # 16-byte vector loads, the prerequisite for full bandwidth


def test_benchmark_flow_runs_end_to_end_on_cpu(tmp_path, capsys):
    # The GPU benchmark cannot run in CI; its dry run walks the same code at tiny shapes
    # in the interpreter, so a broken table or timer shows up here first.
    if not U.INTERPRET:
        pytest.skip("the dry run uses the Triton interpreter")
    import json

    from scaling.app.bench.kernels import main

    out = tmp_path / "kernels.json"
    assert main(["--dry-run", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    ops = {r["op"] for r in res["elementwise"]} | {r["op"] for r in res["flce"]}
    assert ops == {"rms_norm", "swiglu", "rope", "flce"}
    for r in res["elementwise"] + res["flce"]:
        assert r["ours ms"] is not None and r["eager ms"] is not None, r
    assert all(r["ours GB/s"] > 0 for r in res["elementwise"])
    text = capsys.readouterr().out
    assert "Element-wise ops" in text and "Fused linear cross-entropy" in text
    if not CUDA:  # without a GPU the plain command says so and checks correctness instead
        assert main([]) == 0
        assert "need a GPU" in capsys.readouterr().out


@pytest.mark.parametrize("device", DEVICES)
def test_bf16_autocast_training_tracks_eager_small(device):
    # The interpreter's version of the GPU test above: every kernel reads and writes bf16
    # activations under autocast, and a few steps still follow eager bf16.
    from scaling.model import Transformer

    torch.manual_seed(0)
    args = _tiny_args(d_model=64, n_heads=4, n_kv_heads=2, ffn_hidden=160, vocab_size=211, seq_len=16)
    eager = Transformer(args, kernels="eager").to(device)
    ours = Transformer(args, kernels="triton").to(device)
    ours.load_state_dict(copy.deepcopy(eager.state_dict()))
    batches = [_batch(args, 4, device, seed=1)] * 4
    with torch.autocast(device, dtype=torch.bfloat16):
        e_losses, e_grads = _train(eager, batches)
        t_losses, t_grads = _train(ours, batches)
    assert e_losses[-1] < e_losses[0] - 0.1
    for e, t in zip(e_losses, t_losses):
        assert abs(e - t) < 2e-2 * abs(e)
    for name, g in e_grads.items():
        assert U.rel_err(t_grads[name], g) < 5e-2, name


@pytest.mark.parametrize("kernels", ["eager", pytest.param("triton", marks=pytest.mark.skipif(
    not (U.INTERPRET or CUDA), reason="triton needs CUDA or the interpreter"))])
def test_grouped_query_attention_matches_repeated_heads(kernels, monkeypatch):
    # The model shares key/value heads through enable_gqa; the old path copied them with
    # repeat_interleave. Same loss and gradients to float32 rounding.
    import types

    import torch.nn.functional as F

    import scaling.model as M

    device = "cuda" if CUDA and kernels == "triton" else "cpu"
    args = _tiny_args(n_heads=6, n_kv_heads=2, d_model=48)
    torch.manual_seed(0)
    model = M.Transformer(args, kernels=kernels).to(device)
    idx, tgt = _batch(args, 2, device, seed=3)

    def loss_and_grads():
        model.zero_grad(set_to_none=True)
        loss = model(idx, tgt)
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    calls = []

    def repeated(q, k, v, *, is_causal, enable_gqa=False):
        calls.append(enable_gqa)
        rep = q.shape[1] // k.shape[1]
        return F.scaled_dot_product_attention(q, k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1),
                                              is_causal=is_causal)

    loss, grads = loss_and_grads()
    monkeypatch.setattr(M, "F", types.SimpleNamespace(scaled_dot_product_attention=repeated))
    old_loss, old_grads = loss_and_grads()
    assert calls == [True] * args.n_layers
    torch.testing.assert_close(loss, old_loss, rtol=1e-6, atol=1e-6)
    for name, g in grads.items():
        assert U.rel_err(g, old_grads[name]) < 1e-6, name
