"""One self-contained study report: data summary, fit reports, the extrapolation table, figures.

:func:`build_report` writes ``report.md``, ``report.html``, the figures (PNG), the fit
(``fit.json``) and the extrapolation table (``extrapolation.csv``) into one directory;
``scaling report`` and ``scaling demo`` both write it. Everything is rendered in memory
first and written only once all of it succeeded, each file atomically and the two reports
last, so a failure never leaves a half-written report behind. The HTML comes from a small Markdown subset converter
(:func:`markdown_to_html`: headings, paragraphs, lists, fenced code, pipe tables, images,
inline code, bold and italics), which keeps the toolkit free of extra dependencies.
"""
from __future__ import annotations

import datetime as _dt
import html
import json
import re
from pathlib import Path
from typing import Mapping, Sequence

from .. import __version__
from ..common.errors import InputError, ToolkitError
from ..common.records import _jsonable, atomic_write_bytes, atomic_write_text
from ..common.text import markdown_table, model_label, num, sci, si
from ..extrapolation.specs import model_names
from ..extrapolation.study import run_study
from ..fitting.approaches import approach2
from ..selection.checked import saved_fit_dict
from ..selection.checks import checks_markdown
from . import plots
from .plots import figure_bytes

__all__ = ["build_report", "render_report", "report_figures", "report_kinds", "markdown_table", "markdown_to_html",
           "REPORT_FILES", "REPORT_KINDS"]

#: Files a report directory holds: name -> what it is.
REPORT_FILES = {
    "report.md": "the report in Markdown",
    "report.html": "the same report as a standalone HTML page",
    "curves.png": "loss vs tokens per model: measured (solid), the law over each model's fitted budgets (dashed) "
                  "and extrapolated beyond them (dotted), target loss and crossings",
    "isoflop.png": "IsoFLOP profiles: loss vs parameters at fixed compute",
    "residuals.png": "relative residuals of the fitted law",
    "frontier.png": "loss vs compute (6ND) for every run, with the compute-efficient frontier",
    "own_curves.png": "each smaller model's own run extrapolated alone to the largest model's compute",
    "repetition.png": "repeated data: loss against epochs at fixed compute (with repetition and on fresh tokens), "
                      "and the effective data D' against the tokens trained (Muennighoff et al. 2023)",
    "fit.json": "the fitted law, as `scaling extrapolate FIT.json` and analysis.fitting.io.load_result read it",
    "extrapolation.csv": "the compute-matched extrapolation table, one row per smaller model, with intervals",
}

#: Every figure a report can hold, in the report's order; ``scaling plot --kind`` offers each.
REPORT_KINDS = tuple(name[:-4] for name in REPORT_FILES if name.endswith(".png"))


def report_kinds(study) -> list[str]:
    """The figures the report of ``study`` holds: those its data and fit allow."""
    kinds = ["curves"]
    points = study.points
    if points is not None and len(points):
        kinds.append("isoflop")
        if not study.fit.is_published:  # a published law was not fitted to these points
            kinds.append("residuals")
        kinds.append("frontier")
    if study.curve_fits and study.result.models:
        kinds.append("own_curves")
    if points is not None and "unique_tokens" in points.columns and points["unique_tokens"].notna().any():
        kinds.append("repetition")  # repeated data (data.unique_tokens): what an epoch is worth
    return kinds


def report_figures(study, kinds: Sequence[str] | None = None, unique_tokens: float | None = None) -> dict:
    """The report's figures of ``study``, kind -> matplotlib Figure (default: :func:`report_kinds`);
    ``unique_tokens`` is the budget the repetition figure draws (default: the table's median)."""

    kinds = list(report_kinds(study) if kinds is None else kinds)
    unknown = [k for k in kinds if k not in REPORT_KINDS]
    if unknown:
        raise InputError(f"unknown plot kind {unknown[0]!r}", field="kind", fix="use one of " + ", ".join(REPORT_KINDS))
    basic = plots.plot_study(study, [k for k in kinds if k in plots.PLOT_KINDS + plots.EXTRA_KINDS],
                             unique_tokens=unique_tokens)
    out = {}
    for kind in kinds:
        if kind == "frontier":
            out[kind] = plots.plot_runs(study.points, study.curves, x="flops")
        elif kind == "own_curves":
            out[kind] = plots.plot_own_curves(study)
        else:
            out[kind] = basic[kind]
    return out


def _data_rows(points) -> list[dict]:
    rows, names = [], model_names(points)
    for n, g in points.groupby("params", sort=True):
        rows.append({"model": model_label(float(n), names.get(float(n))), "points": str(len(g)),
                     "runs": str(g["run"].nunique()) if "run" in g.columns else "-",
                     "tokens": f"{si(float(g['tokens'].min()))} .. {si(float(g['tokens'].max()))}",
                     "FLOPs (6ND)": f"{sci(6 * float(n) * float(g['tokens'].min()))} .. "
                                    f"{sci(6 * float(n) * float(g['tokens'].max()))}",
                     "best loss": num(float(g["loss"].min()))})
    return rows


def render_report(study, figures: dict[str, str], title: str = "Scaling study report",
                  extra_fits: Sequence = (), sections: Mapping[str, str] | None = None) -> str:
    """The report as Markdown. ``figures`` maps a file name (relative to the report) to a caption;
    ``sections`` (heading -> Markdown body) are added after the fit."""

    r, fit = study.result, study.fit
    md = [f"# {title}", ""]
    stamp = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    md += [f"Generated by scaling-toolkit {__version__} on {stamp}"
           + (f" from {study.source}." if study.source else "."), ""]
    # the checks stand above every number of the report, failures first
    checked = getattr(study, "checked", None)
    if checked is not None and checked.checks and "Sanity checks" not in (sections or {}):

        md += ["## Sanity checks", "", "Failures first; a failed check means the numbers below are not to be "
               "trusted as they stand.", "", checks_markdown(checked.checks), ""]
    if study.points is not None:
        p = study.points
        md += ["## Data", "",
               f"{len(p)} points from {p['params'].nunique()} model sizes and {p['tokens'].nunique()} token budgets"
               + (f" in {p['run'].nunique()} runs." if "run" in p.columns else "."), "",
               markdown_table(_data_rows(p)), ""]
        if study.notes:
            md += ["Notes on the data:", ""] + [f"- {n}" for n in study.notes] + [""]
    if checked is not None and checked.choice is not None:
        md += ["## Law choice", "", checked.choice.reason, ""]
    if checked is not None and checked.short_runs.get("note"):
        md += [checked.short_runs["note"][0].upper() + checked.short_runs["note"][1:] + ".", ""]
    if checked is not None and checked.backtest is not None and checked.backtest.rows:
        md += ["### Backtest", "", "Each candidate law refitted without the largest runs and scored on them "
               "(relative error of the predicted loss).", "", checked.backtest.markdown(), ""]
    md += ["## Fit", "", "```text", fit.report(), "```", ""]
    for other in extra_fits:
        md += ["```text", other.report(), "```", ""]
    if study.curve_fits:
        md += ["### Per-run loss curves", "",
               "Each model's own run fitted with L(D) = E + B / D^beta (the data term of Hoffmann et al. 2022, "
               "eq. 2, at fixed N):", ""]
        names = model_names(study.points)
        md += [markdown_table([{"model": model_label(n, names.get(float(n))), "E": num(c.params["E"]),
                                "B": num(c.params["B"]), "beta": num(c.params["beta"]), "points": str(c.n_points)}
                               for n, c in sorted(study.curve_fits.items())]), ""]
    for heading, body in (sections or {}).items():
        md += [f"## {heading}", "", body.rstrip(), ""]
    md += ["## Compute-matched extrapolation", ""]
    md += [f"- {line}" for line in r.header().splitlines()] + [""]
    rows = r.display_rows()
    md += [markdown_table(rows) if rows else "No model is smaller than the target.", ""]
    md += [f"Note: {n}" for n in r.footnotes()] + ([""] if r.footnotes() else [])
    # how far each answer reaches, and where each model's own runs cross the target's loss:
    # the text output's two blocks, as a heading line and a list
    for block in (r.distance_lines(), r.measured_lines()):
        lines = [ln.strip() for ln in block if ln.strip()]
        if lines:
            md += [lines[0] + ":", ""] + [f"- {ln}" for ln in lines[1:]] + [""]
    md += [f"- {line}" for line in r.summary()] + ([""] if r.models else [])
    md += ["Columns: *loss @ target C* is the loss the model reaches when trained on the target's compute; "
           "*tokens to match* and *FLOPs to match* are what it needs to reach the target's loss (never when "
           "its floor lies above it); *x target C* is that compute over the target's; *break-even inference "
           "tokens* is the served volume after which the smaller model is cheaper overall, counting inference "
           "at 2N FLOPs per token (Sardana and Frankle 2023).", ""]
    if figures:
        md += ["## Figures", ""]
        for name, caption in figures.items():
            md += [f"![{caption}]({name})", "", f"*{caption}*", ""]
    md += ["## Warnings", ""]
    warnings = _warning_lines(fit, r, checked)
    md += warnings if warnings else ["None."]
    md.append("")
    return "\n".join(md)


def _warning_lines(fit, result, checked) -> list[str]:
    """One list of what needs a reader's attention: every sanity check that did not pass
    (by its name in the checks table), then the warnings no check already states."""
    bad = [c for c in (checked.checks if checked is not None else []) if c.status != "ok"]
    said = " ".join(c.detail for c in bad)
    lines = [f"- sanity check *{c.name}*: {c.status}, {c.detail}" for c in bad]
    return lines + [f"- {w}" for w in dict.fromkeys([*fit.warnings, *result.warnings]) if w not in said]


def build_report(source, out_dir, law="auto", target="largest", models=None, bootstrap: int = 0,
                 seed: int = 0, n_jobs: int | None = None, level: float = 0.90, flops: str = "6nd",
                 curves: bool = True, columns=None, policy: str = "raise", title: str = "Scaling study report",
                 study=None, sections: Mapping[str, str] | None = None,
                 figures: Mapping[str, tuple] | None = None) -> dict[str, Path]:
    """Fit, extrapolate, plot and write ``report.md`` + ``report.html`` + figures to ``out_dir``.

    ``source`` is anything :func:`analysis.data.loading.load_points` reads (or pass a ready
    :class:`~analysis.extrapolation.extrapolate.Study` as ``study``); the other arguments are those of
    :func:`analysis.extrapolation.extrapolate.run_study`. ``sections`` (heading -> Markdown) and
    ``figures`` (PNG file name -> (Figure, caption)) add to the standard contents.
    Returns file name -> path of what was written.
    """

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("exists and is not a directory", field=str(out_dir), fix="choose a directory for the report")
    if study is None:
        study = run_study(source, law=law, target=target, models=models, bootstrap=bootstrap, seed=seed,
                          n_jobs=n_jobs, level=level, flops=flops, curves=curves, columns=columns, policy=policy)
    extra_figs = dict(figures or {})
    figures = {f"{k}.png": figure_bytes(fig, "png") for k, fig in report_figures(study).items()}
    captions = {name: REPORT_FILES[name] for name in figures}
    for name, (fig, caption) in extra_figs.items():
        if not name.endswith(".png") or name in figures or name.startswith("report."):
            raise InputError(f"cannot add figure {name!r}", field="figures",
                             fix="name extra figures NAME.png, distinct from " + ", ".join(REPORT_FILES))
        figures[name], captions[name] = figure_bytes(fig, "png"), caption
    saved = (saved_fit_dict(study.checked) if study.checked is not None and study.checked.fit is study.fit
             else {"kind": study.fit.KIND, **study.fit.to_dict()})
    results = {"fit.json": json.dumps(_jsonable(saved), indent=2,
                                      sort_keys=True) + "\n",  # as `scaling fit -o` writes it
               "extrapolation.csv": study.result.to_frame().to_csv(index=False)}
    extra = []
    if study.points is not None and not study.fit.is_published:
        extra = _allocation_fits(study.points)
    md = render_report(study, captions, title=title, extra_fits=extra, sections=sections)
    page = markdown_to_html(md, title=title)
    written = {}
    new = [out_dir / name for name in [*figures, *results, "report.md", "report.html"]
           if not (out_dir / name).exists()]
    try:
        for name, data in figures.items():
            atomic_write_bytes(out_dir / name, data)
            written[name] = out_dir / name
        for name, text in results.items():
            atomic_write_text(out_dir / name, text)
            written[name] = out_dir / name
        # The reports go last: a report that exists always has its figures beside it.
        atomic_write_text(out_dir / "report.md", md)
        atomic_write_text(out_dir / "report.html", page)
    except OSError:
        # A full or read-only disk half way: take back the files this call created, so
        # there are no figures without their report (files it replaced stay replaced).
        for path in new:
            path.unlink(missing_ok=True)
        raise
    written["report.md"], written["report.html"] = out_dir / "report.md", out_dir / "report.html"
    return written


def _allocation_fits(points) -> list:
    """Approach 2 (IsoFLOP) fit when the data allow one; skipped silently otherwise,
    because many sweeps are grids without IsoFLOP structure."""

    try:
        return [approach2(points)]
    except ToolkitError:
        return []


# ============================================================================ Markdown -> HTML

_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;
color:#222;line-height:1.45}table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}pre{background:#f6f6f6;padding:.75rem;overflow-x:auto;font-size:.85rem}
code{font-family:ui-monospace,Menlo,Consolas,monospace}img{max-width:100%}"""


def _inline(text: str) -> str:
    """Escape, then apply inline code, images, links, bold and italics."""
    parts = re.split(r"(`[^`]*`)", text)
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) >= 2:
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
            continue
        s = html.escape(part, quote=False)
        s = re.sub(r"!\[([^\]]*)\]\(([^)\s]+)\)",
                   lambda m: f'<img src="{html.escape(m.group(2))}" alt="{m.group(1)}">', s)
        s = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", lambda m: f'<a href="{html.escape(m.group(2))}">{m.group(1)}</a>', s)
        s = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", s)
        s = re.sub(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])", r"<em>\1</em>", s)
        out.append(s)
    return "".join(out)


def _split_row(line: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [c.strip().replace("\\|", "|") for c in cells]


def markdown_to_html(md: str, title: str = "") -> str:
    """A standalone HTML page from the Markdown subset the reports use."""
    lines = md.split("\n")
    body: list[str] = []
    i = 0
    para: list[str] = []

    def flush():
        if para:
            body.append(f"<p>{_inline(' '.join(para))}</p>")
            para.clear()

    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            flush()
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            body.append("<pre><code>" + html.escape("\n".join(lines[i + 1:j])) + "</code></pre>")
            i = j + 1
            continue
        m = re.match(r"(#{1,6})\s+(.*)", line)
        if m:
            flush()
            k = len(m.group(1))
            body.append(f"<h{k}>{_inline(m.group(2))}</h{k}>")
        elif line.startswith("|") and i + 1 < len(lines) and re.match(r"^\|(\s*:?-+:?\s*\|)+\s*$", lines[i + 1]):
            flush()
            head = _split_row(line)
            body.append("<table><thead><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr></thead><tbody>")
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                body.append("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in _split_row(lines[i])) + "</tr>")
                i += 1
            body.append("</tbody></table>")
            continue
        elif re.match(r"\s*[-*]\s+", line):
            flush()
            body.append("<ul>")
            while i < len(lines) and re.match(r"\s*[-*]\s+", lines[i]):
                item = re.sub(r"^\s*[-*]\s+", "", lines[i])
                body.append(f"<li>{_inline(item)}</li>")
                i += 1
            body.append("</ul>")
            continue
        elif not line.strip():
            flush()
        else:
            para.append(line.strip())
        i += 1
    flush()
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")
