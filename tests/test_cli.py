"""The `scaling` dispatcher: one line per error, and commands independent of each other."""
import pytest

import scaling.cli as cli


def test_a_command_does_not_import_the_others(monkeypatch, capsys, tmp_path):
    # A subcommand module that fails to import must not take the other commands down.
    monkeypatch.setitem(cli.COMMANDS, "broken", "scaling.cli._no_such_module")
    rc = cli.main(["runs", str(tmp_path / "missing"), "--status", "bogus"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "--status: unknown status 'bogus'" in err


def test_unknown_command_is_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["nope"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid choice: 'nope'" in err
