"""Inputs shared by the CLI tests."""

#: Twelve points (4 sizes x 3 budgets) on a known Chinchilla law, as a CSV table.
POINTS = "params,tokens,loss\n" + "".join(
    f"{n:g},{d:g},{1.7 + 400 / n ** 0.34 + 410 / d ** 0.28:.6f}\n"
    for n in (1e6, 3e6, 1e7, 3e7) for d in (1e8, 3e8, 1e9))

#: The law named on the command line.
CHINCHILLA = ["--law", "chinchilla"]
