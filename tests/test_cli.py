"""The `scaling` dispatcher: one line per error, and commands independent of each other."""
import pytest

import scaling.app.cli as cli
from scaling.app.cli import main


def test_a_command_does_not_import_the_others(monkeypatch, capsys, tmp_path):
    # A subcommand module that fails to import must not take the other commands down.
    monkeypatch.setitem(cli.COMMANDS, "broken", "scaling.app.cli._no_such_module")
    rc = cli.main(["runs", str(tmp_path / "missing"), "--status", "bogus"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "--status: unknown status 'bogus'" in err


def test_unknown_command_is_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["nope"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid choice: 'nope'" in err


def test_a_long_cpu_run_is_announced_before_it_starts_and_show_config_estimates_it(tmp_path, monkeypatch, capsys):
    # the README's example (model=tiny tokens_per_param=20) takes 15-30 min on 2 cores; at 40
    # tokens per parameter the warning must come before any training, as one line
    import scaling.train.run as T

    import torch

    from scaling.config import resolve

    calls = []

    def fake_train(cfg, before_training=None):
        # what train() does once every check has passed: hand the hook the run's plan
        calls.append(cfg)
        before_training(resolve(cfg, 256), torch.device("cpu"))
        return T.TrainResult({"status": "completed", "run_name": "r", "final_val_loss": 1.0}, cfg.out)

    monkeypatch.setattr(T, "train", fake_train)
    import warnings

    with pytest.warns(UserWarning, match=r"^this run will train for about [\d.]+ (min|h) on this CPU") as got:
        assert main(["train", "model=tiny", "tokens_per_param=40", f"out={tmp_path / 'long'}", "device=cpu"]) == 0
    assert calls and len(got) == 1  # main prints it as one line, "scaling train: warning: ..."
    # a short run starts without a word
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["train", "model=atto", "tokens=1e5", f"out={tmp_path / 'short'}", "device=cpu"]) == 0
    # --show-config gives the parameter count and the estimate
    assert main(["train", "model=atto", "tokens=1e6", "device=cpu", "--show-config"]) == 0
    out = capsys.readouterr().out
    assert "# parameters: 24,672 (16,480 non-embedding)" in out
    assert "# training time on this machine (cpu): about " in out and "tokens/s (a short timed probe" in out
