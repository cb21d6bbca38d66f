"""The benchmarks' honesty: tables reach docs/benchmarks.md only through `--write-docs`
(the right block replaced, the rest of the page kept byte for byte, CPU timings kept out
of the GPU tables), a kernel that computes the wrong function gets no time in the table,
and what a table compares is timed in interleaved rounds (checked with a fake clock)."""
import re
from pathlib import Path

import pytest

from analysis.common.errors import InputError
from scaling.app.bench import _docs
from scaling.kernels import _utils as U

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"

PAGE = """# Title
intro
<!-- bench:a begin -->
old a
<!-- bench:a end -->
middle, kept
<!-- bench:b begin -->
old b
<!-- bench:b end -->
tail
"""


def test_replace_blocks_swaps_only_the_named_body():
    out = _docs.replace_blocks(PAGE, {"b": "| new | table |\n"})
    assert out == PAGE.replace("old b", "| new | table |")
    # Writing the same block twice is stable: the markers survive the first write.
    assert _docs.replace_blocks(out, {"b": "| new | table |"}) == out
    both = _docs.replace_blocks(PAGE, {"a": "A", "b": "B"})
    assert both.splitlines() == ["# Title", "intro", "<!-- bench:a begin -->", "A", "<!-- bench:a end -->",
                                 "middle, kept", "<!-- bench:b begin -->", "B", "<!-- bench:b end -->", "tail"]


@pytest.mark.parametrize("page", [
    PAGE.replace("<!-- bench:b begin -->\n", ""),                       # begin missing
    PAGE.replace("<!-- bench:b end -->\n", ""),                         # end missing
    PAGE + "<!-- bench:b begin -->\n",                                  # twice
    PAGE.replace("<!-- bench:b begin -->", "X").replace("old b", "<!-- bench:b end -->\n<!-- bench:b begin -->"),
])
def test_replace_blocks_refuses_broken_markers(page):
    with pytest.raises(InputError, match=r"^--write-docs: .*'<!-- bench:b begin -->'"):
        _docs.replace_blocks(page, {"b": "new"})


def test_the_repository_page_has_every_block_once():
    _docs.replace_blocks(DOCS.read_text(encoding="utf-8"), {n: "" for n in ("kernels", "flce", "train", "train-cpu", "train-cpu-synthetic")})


@pytest.mark.parametrize("bench", ["kernels", "train"])
def test_cpu_timings_are_refused_before_anything_runs(bench, tmp_path, capsys):
    from scaling.app.bench.__main__ import main

    page = tmp_path / "benchmarks.md"
    text = DOCS.read_text(encoding="utf-8")
    if bench == "train":
        # the CPU tables have blocks of their own; a page with only the GPU's takes no CPU numbers
        for name in ("train-cpu", "train-cpu-synthetic"):
            text = _outside(text, name).replace(f"<!-- bench:{name} end -->", "")
    page.write_text(text)
    extra = ["--dry-run"] if bench == "kernels" else ["--device", "cpu", "--trainer-sizes", "none"]
    assert main([bench, *extra, "--write-docs", str(page)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--write-docs: " in err[0] and "GPU measurements" in err[0]
    assert page.read_text() == text


def _without_gpu_guard(monkeypatch):
    # The guard is what stops CPU numbers reaching the docs; lifting it here lets CI walk
    # the writing path that a GPU run takes, with a throwaway copy of the page.
    real = _docs.check_target
    monkeypatch.setattr(_docs, "check_target", lambda path, names, device_type: real(path, names, "cuda"))


def _outside(text, name):
    begin, end = f"<!-- bench:{name} begin -->", f"<!-- bench:{name} end -->"
    return text[:text.index(begin)] + text[text.index(end):]


def test_train_benchmark_writes_its_gpu_table_only_from_a_gpu(monkeypatch, tmp_path):
    from scaling.app.bench import train as T

    _without_gpu_guard(monkeypatch)
    page = tmp_path / "benchmarks.md"
    page.write_text(DOCS.read_text(encoding="utf-8"))
    assert T._plan_pages([str(page)], True, ["85m"], False, "cuda") == {str(page): ["train"]}
    assert T._plan_pages([str(page)], False, ["nano"], False, "cpu") == {
        str(page): ["train-cpu", "train-cpu-synthetic"]}
    with pytest.raises(InputError, match="no page given has the block train-cpu"):
        readme = tmp_path / "README.md"
        readme.write_text("intro\n<!-- bench:train-cpu-synthetic begin -->\n<!-- bench:train-cpu-synthetic end -->\n")
        T._plan_pages([str(readme)], False, ["nano"], False, "cpu")
    assert T._plan_pages([str(page), str(readme)], False, [], False, "cpu") == {
        str(page): ["train-cpu-synthetic"], str(readme): ["train-cpu-synthetic"]}


def test_train_benchmark_writes_its_cpu_tables_on_a_busy_machine_with_the_load_said(monkeypatch, tmp_path):
    from scaling.app.bench import train as T

    page, readme = tmp_path / "benchmarks.md", tmp_path / "README.md"
    page.write_text(DOCS.read_text(encoding="utf-8"))
    readme.write_text("# R\n<!-- bench:train-cpu-synthetic begin -->\nold\n<!-- bench:train-cpu-synthetic end -->\ntail\n")
    monkeypatch.setattr(T, "_busy_warning", lambda: "# warning: load average 9.0 on 2 CPUs before starting; ...")
    monkeypatch.setattr(T, "_load_text", lambda: "load average 9.0 on 2 CPUs")
    argv = ["--device", "cpu", "--trainer-sizes", "nano", "--steps", "1", "--warmup", "0", "--seq-len", "32",
            "--batch", "2", "--rounds", "2", "--sizes", "nano", "--kernels", "eager",
            "--write-docs", str(page), "--write-docs", str(readme)]
    assert T.main(argv) == 0
    text, orig = page.read_text(), DOCS.read_text(encoding="utf-8")
    assert _outside(_outside(text, "train-cpu"), "train-cpu-synthetic") == _outside(
        _outside(orig, "train-cpu"), "train-cpu-synthetic")  # the GPU tables untouched
    block = text[text.index("<!-- bench:train-cpu begin -->"):text.index("<!-- bench:train-cpu end -->")]
    assert "Device: CPU" in block and "seq 32, 2 sequences/step" in block and "2 interleaved rounds" in block
    assert "load average 9.0 on 2 CPUs at the start" in block
    rows = [ln.split("|") for ln in block.splitlines() if ln.startswith(("| before | nano", "| after | nano"))]
    # after over before: a median, with its range when the two rounds differ (no speed is checked)
    assert len(rows) == 2 and rows[0][7].strip() == "1.00x" and rows[0][8].strip() == "-"
    assert re.fullmatch(r"\d+\.\d\dx( \(\d+\.\d\d-\d+\.\d\d\))?", rows[1][7].strip())
    assert re.fullmatch(r"\d+% ?(noisy)?", rows[1][8].strip())
    synth = text[text.index("<!-- bench:train-cpu-synthetic begin -->"):text.index("<!-- bench:train-cpu-synthetic end -->")]
    assert "| nano | 123k | eager |" in synth and "| nano | 123k | nanoGPT-style eager |" in synth
    assert readme.read_text().startswith("# R\n<!-- bench:train-cpu-synthetic begin -->\nDevice: CPU")
    assert "| nano | 123k | eager |" in readme.read_text() and readme.read_text().endswith("end -->\ntail\n")


class _FakeCandidate:
    """Stands in for a model of the synthetic loop: each call of steps() moves a fake clock."""

    clock = None
    per_call = {}

    def __init__(self, a, kernels, reference, device, precision, batch, warmup):
        self.label = f"nanoGPT-style {kernels}" if reference else kernels
        self.durations = iter(self.per_call[self.label])

    def steps(self, n):
        self.clock.calls.append(self.label)
        self.clock.now += next(self.durations)

    def turn(self, run):
        return run()

    def peak_gb(self):
        return None

    def close(self):
        pass


@pytest.mark.parametrize("clock_option", ["wall", "cpu"])
def test_the_synthetic_loop_interleaves_its_models_and_reports_each_ratios_range(monkeypatch, capsys, clock_option):
    import time

    from analysis.common import rounds as R
    from scaling.app.bench import train as T
    from test_rounds import FakeClock

    fake, asked = FakeClock(), set()
    real_timed = R.timed

    def fake_timed(fn, clock=None, sync=None):
        asked.add(clock)  # the clock the benchmark chose, replaced by the fake one
        return real_timed(fn, clock=fake, sync=sync)

    monkeypatch.setattr(R, "timed", fake_timed)
    # round 3 is busy for the reference only: its ratio moves, the median does not
    _FakeCandidate.clock, _FakeCandidate.per_call = fake, {
        "eager": [1.0, 1.0, 1.0, 1.0, 1.0],
        "nanoGPT-style eager": [1.25, 1.25, 2.5, 1.2, 1.3],
    }
    monkeypatch.setattr(T, "_Candidate", _FakeCandidate)
    assert T.main(["--device", "cpu", "--sizes", "nano", "--kernels", "eager", "--trainer-sizes", "none",
                   "--steps", "4", "--seq-len", "32", "--batch", "2", "--rounds", "5", "--clock", clock_option]) == 0
    assert asked == {time.process_time if clock_option == "cpu" else time.perf_counter}
    assert fake.calls == ["eager", "nanoGPT-style eager", "nanoGPT-style eager", "eager"] * 2 + [
        "eager", "nanoGPT-style eager"]
    out = capsys.readouterr().out
    ours = next(ln for ln in out.splitlines() if ln.startswith("nano") and " eager " in ln and "nanoGPT" not in ln)
    # tokens/s from the median time (1.0 s for 4 steps of 64 tokens); vs ref: 1.25 (1.20-2.50)
    assert "256" in ours and "1.25x (1.20-2.50)" in ours and "104% noisy" in ours
    warnings = [ln for ln in out.splitlines() if ln.startswith("# warning: ratios vary")]
    assert len(warnings) == 1 and "nano eager vs nanoGPT-style eager 1.20-2.50x around 1.25x" in warnings[0]


def test_kernel_benchmark_writes_its_tables(monkeypatch, tmp_path):
    if not U.INTERPRET:
        pytest.skip("the dry run uses the Triton interpreter")
    from scaling.app.bench.kernels import main

    _without_gpu_guard(monkeypatch)
    page = tmp_path / "benchmarks.md"
    page.write_text(DOCS.read_text(encoding="utf-8"))
    assert main(["--dry-run", "--ops", "rms_norm,flce", "--rounds", "2", "--write-docs", str(page)]) == 0
    text, orig = page.read_text(), DOCS.read_text(encoding="utf-8")
    assert _outside(_outside(text, "kernels"), "flce") == _outside(_outside(orig, "kernels"), "flce")
    for name, first_col in (("kernels", "| rms_norm |"), ("flce", "| flce |")):
        block = text[text.index(f"<!-- bench:{name} begin -->"):text.index(f"<!-- bench:{name} end -->")]
        assert "Device: CPU (dry run" in block and "_not measured_" not in block
        assert sum(ln.startswith(first_col) for ln in block.splitlines()) >= 2


def test_a_wrong_provider_is_reported_and_not_timed(monkeypatch, tmp_path):
    # "Correct first": a provider whose gradient is off by 10% must not get a time in the
    # table, however fast it is; ours still gets its time and its measured error.
    if not U.INTERPRET:
        pytest.skip("the dry run uses the Triton interpreter")
    import json

    from scaling.app.bench import kernel_providers as P
    from scaling.app.bench import kernels as K

    real = P.providers

    def with_a_wrong_one(op, use_compile, use_liger):
        provs = real(op, use_compile, use_liger)
        eager = provs["eager"]

        def wrong(g, u):
            out = eager(g, u)
            return out + 0.1 * (out - out.detach())  # right values, gradients 10% too large
        provs["liger"] = wrong
        return provs

    monkeypatch.setattr(P, "providers", with_a_wrong_one)
    out = tmp_path / "k.json"
    assert K.main(["--dry-run", "--ops", "swiglu", "--rounds", "2", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert len(res["failed_checks"]) == 1 and res["failed_checks"][0].startswith("swiglu liger: relative error 0.1")
    for r in res["elementwise"]:
        assert r["liger ms"] is None and r["x liger"] is None
        # the dry run measures in float32, whose bound is 1e-4
        assert r["ours ms"] > 0 and 0 < r["ours err"] < res["err_bound"] == 1e-4


def test_train_benchmark_times_the_real_trainer_before_and_after(capsys):
    from scaling.app.bench.train import main

    assert main(["--trainer-sizes", "nano", "--no-synthetic", "--steps", "2", "--warmup", "1", "--seq-len", "32",
                 "--batch", "2", "--rounds", "2"]) == 0
    out = capsys.readouterr().out
    assert "# the trainer (scaling.train.trainer.Trainer, built-in corpus" in out and "2 rounds of before and after" in out
    rows = [ln.split() for ln in out.splitlines() if ln.startswith(("before ", "after "))]
    assert [r[:2] for r in rows] == [["before", "nano"], ["after", "nano"]] and rows[0][6:] == ["1.00x", "-"]
    assert all(float(r[4]) >= 0 and float(r[5]) > 0 for r in rows)  # data wait, rest of the step (ms)
    # after over before: a median with its range over the two rounds (or one number when they agree)
    median = float(rows[1][6].rstrip("x"))
    if rows[1][7].startswith("("):
        low, high = (float(x) for x in rows[1][7].strip("()").split("-"))
        assert low <= median <= high


def test_the_memory_table_in_the_trainer_docs_is_the_commands_output(tmp_path, capsys):
    # `python -m scaling.app.bench memory --write-docs docs/trainer.md` computes, it does not
    # measure: the page must hold what the estimate now says
    from scaling import config as C
    from scaling import memory as MEM
    from scaling.app.bench.__main__ import main

    trainer_md = DOCS.parent / "trainer.md"
    page = tmp_path / "trainer.md"
    page.write_text(trainer_md.read_text(encoding="utf-8").replace("| 1b |", "| stale |"))
    assert main(["memory", "--write-docs", str(page)]) == 0
    assert page.read_text(encoding="utf-8") == trainer_md.read_text(encoding="utf-8")
    out = capsys.readouterr().out
    row = next(ln for ln in out.splitlines() if ln.startswith("| 1b |")).split("|")
    # 1b on 8 GPUs at its whole share of 64 sequences: the estimate, in GiB
    cfg = C.from_overrides(["model=1b", "seq_len=2048", "batch_tokens=1048576", "data.tokenizer=bpe",
                            "data.vocab_size=50257", "precision=bf16", "kernels=triton", "tokens=1e9"])
    assert row[3].strip() == "512" and row[4].strip() == "8" and row[5].strip() == "64"
    assert row[9].strip() == f"{MEM.estimate_memory(cfg, vocab_size=50257, world_size=8).peak / 2**30:.1f}"
    assert row[11].strip() == "no"
