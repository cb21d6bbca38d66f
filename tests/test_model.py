"""The model and its accounting: parameter and FLOP counts against the module and against
numbers worked out by hand, initial loss, causality, overfitting one batch, presets."""
import math

import pytest
import torch
import torch.nn.functional as F

from analysis.common.errors import ConfigError
from scaling import flops
from scaling.config import PRESETS, ModelArgs, TrainConfig, model_args, shape_for_params, swiglu_hidden
from scaling.model import Transformer


def _args(**kw) -> ModelArgs:
    base = dict(d_model=64, n_layers=2, n_heads=2, n_kv_heads=2, ffn_hidden=192, vocab_size=256, seq_len=128)
    base.update(kw)
    return ModelArgs(**base)


@pytest.mark.parametrize("kw", [
    {},
    {"tie_embeddings": False},
    {"n_heads": 4, "n_kv_heads": 2},                       # grouped-query attention
    {"d_model": 96, "n_heads": 3, "n_kv_heads": 3, "ffn_hidden": 100, "vocab_size": 1000},
    {"n_layers": 3, "vocab_size": 50, "tie_embeddings": False},
])
def test_param_counts_match_the_module(kw):
    a = _args(**kw)
    m = Transformer(a)
    n_module = sum(p.numel() for p in m.parameters())
    assert flops.count_params(a) == n_module == m.num_params()
    emb = m.tok_emb.weight.numel() + (0 if a.tie_embeddings else m.lm_head.weight.numel())
    assert flops.nonembedding_params(a) == n_module - emb


def test_counts_against_hand_computed_values():
    # d=64, L=2, nh=2 (hs=32), ffn=192, V=256, T=128, tied embeddings.
    a = _args()
    # Per layer: qkv 64*(3*64)=12288, proj 64*64=4096, SwiGLU 3*64*192=36864, 2 norms 128.
    per_layer = 12288 + 4096 + 36864 + 128  # = 53376
    nonemb = 2 * per_layer + 64              # + final norm = 106816
    assert flops.nonembedding_params(a) == 106816 == nonemb
    assert flops.count_params(a) == 106816 + 256 * 64 == 123200
    assert flops.flops_6n_per_token(a) == 6 * 106816 == 640896

    # Hoffmann et al. 2022 App. F, per token (per-sequence terms divided by T=128):
    emb = 2 * 256 * 64                 # 32768
    qkv = 2 * 64 * (3 * 64)            # 24576
    logits_kq = 2 * 128 * 64           # 16384
    softmax = 3 * 2 * 128              # 768
    reduction = 2 * 128 * 64           # 16384
    project = 2 * 64 * 64              # 8192
    dense = 2 * 3 * 64 * 192           # 73728
    final_logits = 2 * 64 * 256        # 32768
    forward = emb + 2 * (qkv + logits_kq + softmax + reduction + project + dense) + final_logits
    assert forward == 345600
    assert flops.forward_flops_per_token(a) == 345600
    assert flops.training_flops_per_token(a) == 3 * 345600 == 1036800
    parts = flops.forward_flops_breakdown(a)
    assert parts["attention_softmax"] == 2 * 768 and parts["logits"] == 32768

    # PaLM App. B: 6N + 12 L H Q T, N = matmul weights (non-embedding + the V x d head).
    assert flops.palm_attention_flops_per_token(a) == 12 * 2 * 2 * 32 * 128 == 196608
    assert flops.palm_flops_per_token(a) == 6 * (106816 + 16384) + 196608 == 935808


def test_gqa_shrinks_qkv_flops_by_hand():
    a = _args(n_heads=4, n_kv_heads=1)  # hs = 16: q 64 wide, k and v 16 wide each
    assert flops.forward_flops_breakdown(a)["attention_qkv"] == 2 * (2 * 64 * (64 + 16 + 16))


def test_swiglu_width_rule():
    assert swiglu_hidden(64) == 192      # 8/3*64 = 170.7 -> 192
    assert swiglu_hidden(768) == 2048    # exactly 2048
    assert swiglu_hidden(1024) == 2752   # 2730.7 -> 2752


def test_initial_loss_is_log_vocab_and_logits_agree_with_loss():
    torch.manual_seed(0)
    a = _args()
    m = Transformer(a)
    idx = torch.randint(0, 256, (4, 65))
    loss = m(idx[:, :-1], idx[:, 1:])
    assert abs(loss.item() - math.log(256)) < 0.1
    logits = m(idx[:, :-1])
    assert logits.shape == (4, 64, 256)
    ref = F.cross_entropy(logits.reshape(-1, 256).double(), idx[:, 1:].reshape(-1))
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)


def test_attention_is_causal(one_thread):
    torch.manual_seed(0)
    m = Transformer(_args(n_heads=4, n_kv_heads=2))
    idx = torch.randint(0, 256, (2, 40))
    changed = idx.clone()
    changed[:, 25:] = (changed[:, 25:] + 7) % 256
    a, b = m(idx), m(changed)
    torch.testing.assert_close(a[:, :25], b[:, :25], rtol=0, atol=1e-6)
    assert (a[:, 25:] - b[:, 25:]).abs().max() > 1e-3


def test_residual_projections_are_scaled_down():
    m = Transformer(_args(n_layers=8, seq_len=16, d_model=256, n_heads=4, n_kv_heads=4, ffn_hidden=704))
    std_in = m.blocks[0].attn.qkv.weight.std().item()
    std_out = m.blocks[0].attn.proj.weight.std().item()
    assert std_in == pytest.approx(0.02, rel=0.05)
    assert std_out == pytest.approx(0.02 / math.sqrt(16), rel=0.05)


@pytest.fixture
def one_thread():
    """Tiny matmuls run fastest on one thread, and do not suffer when the cores are shared."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_overfits_one_batch(one_thread):
    torch.manual_seed(0)
    m = Transformer(_args(d_model=64, seq_len=32))
    idx = torch.randint(0, 256, (4, 33))
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=0.0)
    for _ in range(60):
        loss = m(idx[:, :-1], idx[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05  # from ln 256 = 5.5: the 128 targets are memorised


def test_presets_span_the_ladder_in_order():
    ns = []
    for name, p in PRESETS.items():
        a = ModelArgs(p.d_model, p.n_layers, p.n_heads, p.n_heads, swiglu_hidden(p.d_model), 256, 256)
        assert p.d_model % p.n_heads == 0 and (p.d_model // p.n_heads) % 2 == 0, name
        ns.append(flops.nonembedding_params(a))
    assert ns == sorted(ns)
    assert 0.01e6 < ns[0] < 0.02e6  # atto, the demo's smallest model
    assert ns[-1] >= 1e9


def test_size_by_target_param_count():
    errors = []
    for i in range(60):  # 1e5 .. 1.6e9, log-spaced
        target = 10 ** (5 + 4.2 * i / 59)
        p = shape_for_params(target)
        a = ModelArgs(p.d_model, p.n_layers, p.n_heads, p.n_heads, swiglu_hidden(p.d_model), 256, 256)
        assert (p.d_model // p.n_heads) % 2 == 0
        errors.append(abs(flops.nonembedding_params(a) / target - 1))
    assert max(errors) < 0.2 and sorted(errors)[len(errors) // 2] < 0.03
    for name, p in PRESETS.items():  # a preset's own size gives back the preset
        a = ModelArgs(p.d_model, p.n_layers, p.n_heads, p.n_heads, swiglu_hidden(p.d_model), 256, 256)
        assert shape_for_params(flops.nonembedding_params(a)) == p, name


def test_model_args_from_config_and_errors():
    cfg = TrainConfig(model="auto", model_params=3e6)
    a = model_args(cfg, 256)
    assert 2e6 < flops.nonembedding_params(a) < 4e6
    with pytest.raises(ConfigError, match="^model: unknown preset"):
        model_args(TrainConfig(model="gigantic"), 256)
    bad = TrainConfig(model="nano")
    bad.arch.vocab_size = 100
    with pytest.raises(ConfigError, match="arch.vocab_size"):
        model_args(bad, 256)
    odd = TrainConfig(model="nano")
    odd.arch.n_heads = 3  # 64 / 3 is not whole
    with pytest.raises(ConfigError, match="arch.n_heads"):
        model_args(odd, 256)


#: BF16 tensor-core peaks as NVIDIA's datasheets print them, in TFLOP/s "with sparsity"
#: (dense is half): H100 SXM 1,979 and PCIe 1,513 (H100 datasheet), H100 NVL 1,671 (H100 NVL
#: product brief), A100 624 (A100 datasheet, dense 312), L40S 733 (dense 362.05), L4 242.
#: Keys are the names torch.cuda.get_device_name() reports.
DATASHEET_SPARSE_BF16_TFLOPS = {
    "NVIDIA H100 80GB HBM3": 1979,
    "NVIDIA H100 PCIe": 1513,
    "NVIDIA H100 NVL": 1671,
    "NVIDIA A100-SXM4-80GB": 624,
    "NVIDIA A100 80GB PCIe": 624,
    "NVIDIA L40S": 733,
    "NVIDIA L4": 242,
}


@pytest.mark.parametrize("device, sparse_tflops", DATASHEET_SPARSE_BF16_TFLOPS.items())
def test_peak_flops_are_the_datasheets_dense_bf16_peaks(device, sparse_tflops):
    # Within 1.5%: the table rounds (989 for 989.5) and the L40S's dense figure is not
    # exactly half its sparse one. The H100 variants and L4/L40S differ by 10% to 3x, so a
    # name matched by the wrong fragment (the SXM row for a PCIe card) fails.
    assert flops.peak_flops_for(device, "bf16") == pytest.approx(sparse_tflops / 2 * 1e12, rel=0.015)


def test_peak_flops_unknown_for_other_precisions_and_devices():
    assert flops.peak_flops_for("NVIDIA H100 80GB HBM3", "fp32") is None
    assert flops.peak_flops_for("Some CPU", "bf16") is None
    assert flops.peak_flops_for("", "bf16") is None


def test_benchmark_reference_has_the_same_shape_and_loss_scale():
    from scaling.app.bench.nanogpt_ref import RefGPT

    a = _args(vocab_size=300)
    ref = RefGPT(a.d_model, a.n_layers, a.n_heads, a.ffn_hidden, a.vocab_size, a.seq_len)
    assert sum(p.numel() for p in ref.parameters()) == flops.count_params(a)
    idx = torch.randint(0, 300, (2, 17))
    assert abs(ref(idx[:, :-1], idx[:, 1:]).item() - math.log(300)) < 0.1
