"""Validation loss in bits per byte beside nats per token (Gao et al. 2020): exactly
loss / ln 2 for byte-level tokens, the held-out text's own bytes per token for BPE
(checked against bytes counted here from the files), unavailable for pre-tokenized shards
(no number rather than a wrong one), and absent from records written before it was kept."""
import json
import math
from pathlib import Path

import numpy as np

from analysis.common import records
from scaling.data import corpus as D
from scaling.app.cli import main as cli_main
from scaling.config import from_overrides
from scaling.train.run import train
from sweeps.index import build_index
from trainer_testing import tiny_overrides

ROOT = Path(__file__).resolve().parents[1]
LN2 = math.log(2)


def _runs_json(capsys, path) -> dict:
    assert cli_main(["runs", str(path), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_byte_level_bits_per_byte_is_the_loss_over_ln2(cache, tmp_path, capsys):
    assert cli_main(["train", *tiny_overrides(cache, tmp_path / "r", "tokens=4096")]) == 0
    s = records.read_summary(tmp_path / "r")
    assert f"final val loss {s['final_val_loss']:.4f} ({s['final_val_bpb']:.4f} bits per byte)" in (
        capsys.readouterr().out)
    assert s["val_bytes_per_token"] == 1.0  # one byte per token, the NUL between documents included
    rows = [r for r in records.read_metrics(tmp_path / "r") if "val_loss" in r]
    assert rows and all(r["val_bpb"] == r["val_loss"] / LN2 for r in rows)
    assert s["final_val_bpb"] == s["final_val_loss"] / LN2
    (row,) = _runs_json(capsys, tmp_path / "r")["rows"]
    assert row["bpb"] == s["final_val_bpb"]
    assert cli_main(["runs", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "bits/byte" in out and f"{s['final_val_bpb']:.4g}" in out


def _texts(src: Path) -> None:
    """Documents of multi-byte UTF-8 text (2-, 3- and 4-byte characters) that start and end
    in ASCII, so the evaluated span's edges cut no character in two."""
    words = ["naïve", "café", "crème", "Größe", "数据", "模型", "損失", "🙂", "λ", "ω", "plain", "ascii", "text"]
    rng = np.random.default_rng(0)
    src.mkdir()
    for i in range(24):
        body = " ".join(rng.choice(words, size=300))
        (src / f"doc{i:02d}.txt").write_text(f"# document {i}\n{body}\n" + "end " * 120 + "\n", encoding="utf-8")


def test_bpe_bits_per_byte_counts_the_bytes_of_the_held_out_text(tmp_path):
    src = tmp_path / "src"
    _texts(src)
    seq_len, val_frac = 32, 0.25
    over = ["model=nano", "arch.d_model=32", "arch.n_heads=2", f"seq_len={seq_len}", "batch_tokens=256",
            "threads=1", "tokens=1024", "progress=none", "data.tokenizer=bpe", "data.vocab_size=300",
            f"data.val_frac={val_frac}", "data.val_tokens=1000000", f"data.source={src}",
            f"data.cache_dir={tmp_path / 'cache'}", f"out={tmp_path / 'r'}"]
    s = train(from_overrides(over))

    # The held-out documents, read and tokenized here with the run's own tokenizer.
    held = [p for p in sorted(src.iterdir()) if D.is_validation(p.name, val_frac)]
    assert 2 <= len(held) < 24
    tok = D.load_tokenizer(Path(s["data"]["cache"]) / "tokenizer.json")
    eot = tok.token_to_id(D.EOT)
    stream = np.concatenate([tok.encode(p.read_text(encoding="utf-8")).ids + [eot] for p in held])
    corpus = D.load_corpus(from_overrides(over).data)
    assert np.array_equal(stream, np.asarray(corpus.val.arrays[0]))  # the run's validation split

    # Every window of seq_len + 1 tokens at stride seq_len fits: the loss averages over
    # tokens 1 .. k * seq_len of the stream. Their bytes: the text between the separators.
    k = (len(stream) - 1) // seq_len
    predicted = stream[1:k * seq_len + 1]

    def nbytes(ids) -> int:
        cuts = np.flatnonzero(ids == eot)
        return sum(len(tok.decode(part.tolist()).encode("utf-8"))
                   for part in np.split(ids, cuts) if len(part[part != eot]))

    want = nbytes(predicted)
    # ... which with the unpredicted first token and tail are the files' bytes, counted here
    assert want + nbytes(stream[:1]) + nbytes(stream[k * seq_len + 1:]) == sum(p.stat().st_size for p in held)
    assert s["val_bytes_per_token"] == want / len(predicted)
    assert s["val_bytes_per_token"] > 1.5  # BPE compresses: well above the byte tokenizer's 1
    bpb = s["final_val_loss"] * len(predicted) / (want * LN2)
    assert math.isclose(s["final_val_bpb"], bpb, rel_tol=1e-12)
    for r in records.read_metrics(tmp_path / "r"):
        if "val_loss" in r:
            assert math.isclose(r["val_bpb"], r["val_loss"] * len(predicted) / (want * LN2), rel_tol=1e-12)


def test_pretokenized_shards_say_bits_per_byte_is_unavailable(tmp_path, capsys):
    rng = np.random.default_rng(0)
    D.write_shard(tmp_path / "d_train.bin", rng.integers(0, 500, 8000), 500, "llm.c")
    D.write_shard(tmp_path / "d_val.bin", rng.integers(0, 500, 2000), 500, "llm.c")
    out = tmp_path / "runs" / "r"
    over = ["model=nano", "arch.d_model=32", "arch.n_heads=2", "seq_len=64", "batch_tokens=1024", "threads=1",
            "tokens=2048", "progress=none", "data.vocab_size=500", "data.val_tokens=1024",
            f"data.source={tmp_path}", f"out={out}"]
    assert cli_main(["train", *over]) == 0
    assert "(bits per byte unavailable: pre-tokenized shards record no text bytes)" in capsys.readouterr().out
    s = records.read_summary(out)
    assert s["final_val_loss"] is not None and s["val_bytes_per_token"] is None and s["final_val_bpb"] is None
    assert not [r for r in records.read_metrics(out) if "val_bpb" in r]
    (row,) = _runs_json(capsys, out)["rows"]
    assert "bpb" in row and row["bpb"] is None and row["loss"] == s["final_val_loss"]
    assert cli_main(["runs", str(tmp_path / "runs")]) == 0
    text = capsys.readouterr().out
    assert "bits/byte" in text and "- where the bytes are unknown (pre-tokenized shards)" in text


def test_records_written_before_bits_per_byte_still_read():
    demo = ROOT / "docs" / "data" / "demo_runs"
    df = build_index(demo)
    assert "bpb" not in df.columns and df["loss"].notna().all()
    for run_dir in records.find_run_dirs(demo):
        assert "val_bytes_per_token" not in records.read_summary(run_dir)
        assert records.read_metrics(run_dir)
    assert records.bits_per_byte(2.0, None) is None and records.bits_per_byte(None, 1.0) is None
    assert records.bits_per_byte(2.0, 1.0) == 2.0 / LN2 and records.bits_per_byte(float("nan"), 1.0) is None
