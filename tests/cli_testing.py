"""Inputs shared by the CLI tests."""

#: Twelve points (4 sizes x 3 budgets) on a known Chinchilla law, as a CSV table.
POINTS = "params,tokens,loss\n" + "".join(
    f"{n:g},{d:g},{1.7 + 400 / n ** 0.34 + 410 / d ** 0.28:.6f}\n"
    for n in (1e6, 3e6, 1e7, 3e7) for d in (1e8, 3e8, 1e9))

#: The law named on the command line.
CHINCHILLA = ["--law", "chinchilla"]


def assert_json_schema(obj, command: str) -> None:
    """``obj`` (what ``scaling COMMAND --json`` printed) is valid against docs/json-schema.json's
    ``commands[COMMAND]``, and every key named ``law`` in it holds a law object (docs/json.md)."""
    import json
    from pathlib import Path

    import jsonschema

    schema = json.loads((Path(__file__).resolve().parents[1] / "docs" / "json-schema.json").read_text())
    jsonschema.validate(obj, {**schema, "$ref": f"#/commands/{command}"})

    def walk(o, where):
        if isinstance(o, dict):
            for k, v in o.items():
                assert k != "law" or isinstance(v, dict), f"{where}.{k} is {v!r}, not a law object"
                walk(v, f"{where}.{k}")
        elif isinstance(o, list):
            for i, v in enumerate(o):
                walk(v, f"{where}[{i}]")

    walk(obj, command)
