"""kernels=triton under torch.compile: the Triton ops are torch.library custom ops, so a
whole training step traces as one graph, and the compiled step computes what eager does.

Runs on the CPU through the Triton interpreter (tests/conftest.py sets TRITON_INTERPRET=1
when there is no CUDA); shapes are tiny because every kernel program costs about a
millisecond there."""
import copy

import pytest
import torch


from kernel_testing import DEVICES, assert_compiled_matches_eager, poisoned_outputs_exact_fp32  # noqa: F401 (autouse fixture)


def _model(kernels, device, **kw):
    from scaling.config import ModelArgs
    from scaling.model import Transformer

    # Grouped-query heads, an MLP width and vocabulary that are not powers of two.
    base = dict(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_hidden=48, vocab_size=37, seq_len=8)
    base.update(kw)
    torch.manual_seed(0)
    return Transformer(ModelArgs(**base), kernels=kernels).to(device)


def _batch(device, vocab=37, T=8, B=2):
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(0, vocab, (B, T), generator=g)
    tgt = torch.randint(0, vocab, (B, T), generator=g)
    tgt[:, -2:] = -100
    return idx.to(device), tgt.to(device)


def _step_fn(model):
    def step(idx, tgt):
        loss = model(idx, tgt)
        loss.backward()
        return loss.detach()
    return step


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16-autocast"])
def test_training_step_has_no_graph_breaks(device, bf16):
    model = _model("triton", device)
    idx, tgt = _batch(device)
    step = _step_fn(model)
    ctx = torch.autocast(device, dtype=torch.bfloat16) if bf16 else torch.autocast(device, enabled=False)
    # trace_autograd_ops lets dynamo put loss.backward() in the graph too, so the whole
    # step (forward, loss, backward) is one trace.
    with torch._dynamo.config.patch(trace_autograd_ops=True), ctx:
        explained = torch._dynamo.explain(step)(idx, tgt)
    assert explained.graph_break_count == 0, [str(r.reason).splitlines()[0] for r in explained.break_reasons]
    assert explained.graph_count == 1
    ops = {str(op) for ops in explained.ops_per_graph for op in ops}
    for name in ("rms_norm", "rope_qkv", "swiglu_packed", "linear_cross_entropy"):
        assert any(f"scaling.{name}" in o for o in ops), name  # the kernels are in the graph, not around it


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
def test_compiled_step_matches_eager(device, tie):
    # aot_eager runs AOTAutograd: the fake implementations give the shapes, and the
    # backward comes from the registered autograd formulas, traced into a graph.
    torch._dynamo.reset()
    eager = _model("eager", device, tie_embeddings=tie)
    ours = _model("triton", device, tie_embeddings=tie)
    ours.load_state_dict(copy.deepcopy(eager.state_dict()))
    idx, tgt = _batch(device)
    assert_compiled_matches_eager(eager, ours, idx, tgt)


@pytest.mark.parametrize("device", DEVICES)
def test_custom_op_registrations(device):
    # torch.library.opcheck compares each op's fake implementation, schema and autograd
    # registration against running it.
    from scaling.kernels import cross_entropy as CE
    from scaling.kernels import rms_norm as RN
    from scaling.kernels import rope as RP
    from scaling.kernels import swiglu as SW

    torch.manual_seed(0)

    def t(*shape):
        return torch.randn(*shape, device=device, requires_grad=True)

    cos, sin = torch.randn(5, 4, device=device), torch.randn(5, 4, device=device)
    targets = torch.tensor([1, -100, 3, 0, 6, 2], device=device)
    cases = [
        (RN._rms_norm_op, (t(2, 3, 12), t(12), 1e-5, torch.float32)),
        (SW._swiglu_op, (t(3, 10), t(3, 10))),
        (SW._swiglu_packed_op, (t(2, 3, 20),)),
        (RP._rope_op, (t(2, 3, 5, 8), t(2, 1, 5, 8), cos, sin, 1)),
        (RP._rope_qkv_op, (t(2, 5, 3 + 2, 8), cos, sin, 3, 1)),
        (CE._flce_op, (t(6, 8), t(7, 8), targets, -100, 1e-3, 4, True, True)),
    ]
    for op, args in cases:
        torch.library.opcheck(op, args, test_utils=("test_schema", "test_faketensor", "test_autograd_registration",
                                                          "test_aot_dispatch_dynamic"))
