"""The memory plan (scaling/memory.py) against the bytes autograd really keeps for
backward, measured on CPU with saved-tensor hooks, and the micro-batch it picks."""
import contextlib
import subprocess
import sys

import pytest
import torch

from analysis.common.errors import ConfigError
from scaling import config as C
from scaling import memory as MEM
from scaling.kernels import _utils as U


def _args(**kw):
    base = dict(d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_hidden=160, vocab_size=300, seq_len=32)
    base.update(kw)
    return C.ModelArgs(**base)


def _saved_bytes(module, inputs, bf16: bool, exclude=()) -> int:
    """Bytes of the distinct storages autograd keeps from ``module(*inputs)`` for backward,
    leaving out the parameters and buffers themselves (they are not activations) and the
    storages of ``exclude``."""
    own = {t.untyped_storage().data_ptr() for t in (*module.parameters(), *module.buffers(), *exclude)}
    kept = {}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in own:
            kept[s.data_ptr()] = s.nbytes()
        return t

    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), ctx:
        out = module(*inputs)
    out.float().sum().backward()  # the graph really runs with what was kept
    return sum(kept.values())


def measured_saved_bytes(model, idx, tgt, bf16: bool) -> int:
    """What one forward pass of the model keeps for backward. With activation
    checkpointing that is each block's input (``torch.utils.checkpoint`` saves it through
    the same hooks) and the head; the blocks' own activations come back one block at a
    time in backward (:func:`test_recomputed_block_matches_what_one_block_keeps`)."""
    return _saved_bytes(model, (idx, tgt), bf16)


CASES = [
    # (kernels, bf16, checkpointing, model overrides, micro_batch)
    ("eager", False, False, {}, 4),
    ("eager", True, False, {}, 4),
    ("eager", False, False, dict(n_kv_heads=4, vocab_size=97, seq_len=64), 3),
    ("eager", True, True, dict(n_layers=3), 4),
    ("triton", False, False, {}, 2),
    ("triton", True, False, {}, 2),
    ("triton", True, False, dict(d_model=48, n_heads=3, n_kv_heads=1, ffn_hidden=128, vocab_size=61), 3),
    ("triton", False, True, {}, 2),
]


@pytest.mark.parametrize("kernels,bf16,ckpt,over,mb", CASES,
                         ids=[f"{k}-{'bf16' if b else 'fp32'}{'-ckpt' if c else ''}-{i}"
                              for i, (k, b, c, _, _) in enumerate(CASES)])
def test_estimate_matches_saved_tensors(kernels, bf16, ckpt, over, mb):
    if kernels == "triton" and not U.INTERPRET:
        pytest.skip("the triton kernels run on CPU through the interpreter only")
    from scaling.model import Transformer

    a = _args(**over)
    torch.manual_seed(0)
    model = Transformer(a, kernels=kernels, checkpointing=ckpt)
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(0, a.vocab_size, (mb, a.seq_len), generator=g)
    tgt = torch.randint(0, a.vocab_size, (mb, a.seq_len), generator=g)
    got = measured_saved_bytes(model, idx, tgt, bf16)
    est = MEM.estimate_model_memory(a, mb, kernels=kernels, precision="bf16" if bf16 else "fp32",
                                    checkpointing=ckpt, device_type="cpu")
    assert abs(est.saved - got) <= 0.15 * got, (est.saved, got)


@pytest.mark.parametrize("kernels,bf16,over,mb", [(k, b, o, m) for k, b, _, o, m in CASES],
                         ids=[f"{k}-{'bf16' if b else 'fp32'}-{i}" for i, (k, b, _, _, _) in enumerate(CASES)])
def test_recomputed_block_matches_what_one_block_keeps(kernels, bf16, over, mb):
    # With checkpointing, backward reruns one block at a time, which then keeps what a
    # block keeps without checkpointing: measured on one block alone (its input left
    # out, as the checkpoint already holds it).
    if kernels == "triton" and not U.INTERPRET:
        pytest.skip("the triton kernels run on CPU through the interpreter only")
    from scaling.model import Transformer

    a = _args(**over)
    torch.manual_seed(0)
    model = Transformer(a, kernels=kernels)
    x = torch.randn(mb, a.seq_len, a.d_model, generator=torch.Generator().manual_seed(1), requires_grad=True)
    got = _saved_bytes(model.blocks[0], (x, model.rope_cos, model.rope_sin), bf16, exclude=(x,))
    est = MEM.estimate_model_memory(a, mb, kernels=kernels, precision="bf16" if bf16 else "fp32",
                                    checkpointing=True, device_type="cpu")
    assert abs(est.parts["recomputed"] - got) <= 0.15 * got, (est.parts["recomputed"], got)
    assert est.transient >= est.parts["recomputed"]
    assert MEM.estimate_model_memory(a, mb, kernels=kernels, device_type="cpu").parts["recomputed"] == 0


def test_estimate_parts_and_scaling():
    a = _args(n_layers=4, seq_len=256, vocab_size=1000)
    one = MEM.estimate_model_memory(a, 1)
    four = MEM.estimate_model_memory(a, 4)
    from scaling import flops as F

    n = F.count_params(a)
    assert one.static == 16 * n  # float32 weights, gradients and two AdamW moments
    assert MEM.estimate_model_memory(a, 1, world_size=8).static == 20 * n  # plus DDP's buckets
    # activations grow linearly in the micro-batch, the static part does not
    assert four.saved_layers == 4 * one.saved_layers
    ck = MEM.estimate_model_memory(a, 4, checkpointing=True)
    assert ck.saved_layers == a.n_layers * 4 * a.d_model * 4 * a.seq_len  # block inputs only
    assert ck.peak < four.peak
    # the fused loss keeps no logits; eager keeps float32 log-probabilities of every token
    eager = MEM.estimate_model_memory(a, 4, kernels="eager")
    assert eager.saved_head - four.saved_head > 4 * a.vocab_size * 4 * a.seq_len * 0.9
    # auto resolves as the trainer does
    assert MEM.estimate_model_memory(a, 1, kernels="auto", precision="auto", device_type="cpu").kernels == "eager"


def test_pick_micro_batch_takes_the_largest_fitting_divisor():
    cfg = C.from_overrides(["model=small", "seq_len=128", "batch_tokens=8192", "kernels=triton", "precision=bf16"])
    per_rank = 8192 // 128
    ests = {mb: MEM.estimate_memory(cfg, micro_batch=mb).peak for mb in (64, 32, 16)}
    # a device that holds 32 sequences but not 64
    device = int((ests[32] + ests[64]) / 2 / 0.9) + MEM.DEVICE_RESERVE_BYTES
    choice = MEM.pick_micro_batch(cfg, device, margin=0.1)
    assert (choice.micro_batch, choice.grad_accum, choice.checkpointing) == (32, 2, False)
    assert choice.estimate.peak <= choice.usable_bytes
    big = MEM.pick_micro_batch(cfg, 1 << 40)
    assert big.micro_batch == per_rank and not big.checkpointing
    # nothing fits without checkpointing, but one sequence fits with it
    no_ckpt_1 = MEM.estimate_memory(cfg, micro_batch=1).peak
    with_ckpt = {mb: MEM.estimate_memory(cfg, micro_batch=mb, checkpointing=True).peak for mb in (1, 2)}
    assert with_ckpt[1] < no_ckpt_1
    device = int(min(no_ckpt_1 - 1, with_ckpt[2] - 1) / 0.9) + MEM.DEVICE_RESERVE_BYTES
    if with_ckpt[1] <= (device - MEM.DEVICE_RESERVE_BYTES) * 0.9:
        choice = MEM.pick_micro_batch(cfg, device, margin=0.1)
        assert choice.checkpointing and choice.micro_batch == 1
    with pytest.raises(ConfigError, match="micro_batch"):
        MEM.pick_micro_batch(cfg, MEM.DEVICE_RESERVE_BYTES + 1000)


def test_module_imports_without_torch():
    code = ("import sys; import scaling.memory; "
            "bad = [m for m in ('torch', 'numpy', 'triton') if m in sys.modules]; "
            "assert not bad, bad")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("kernels,mb,ckpt", [("triton", 8, False), ("eager", 4, False), ("triton", 8, True)])
def test_estimate_against_max_memory_allocated(kernels, mb, ckpt):
    # On a GPU the whole peak is measured: a second step (AdamW's moments exist, the
    # gradients were freed by zero_grad and come back in backward).
    from scaling.model import Transformer

    a = _args(d_model=512, n_layers=4, n_heads=8, n_kv_heads=4, ffn_hidden=1408, vocab_size=8192, seq_len=512)
    torch.manual_seed(0)
    model = Transformer(a, kernels=kernels, checkpointing=ckpt).cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    idx = torch.randint(0, a.vocab_size, (mb, a.seq_len), device="cuda")
    for step in range(2):
        if step == 1:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(idx, idx)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    est = MEM.estimate_model_memory(a, mb, kernels=kernels, precision="bf16", checkpointing=ckpt)
    # The estimate counts the gradients and every kept activation at once, so it may
    # overstate the peak a little; it must not understate it by much.
    assert 0.85 * peak <= est.peak <= 1.3 * peak, (est.peak, peak)
