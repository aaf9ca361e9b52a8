"""report.html: a sweep's report as one self-contained page, for a reader who has only that file.

Everything is inside it: the CSS, the figures as data: URIs (SVG, so vector, where drawn; else the PNG), no script
and no font but the reader's own, and a Content-Security-Policy that forbids every fetch: it opens offline in any
browser, reads on a phone (one column; tables stacked on narrow screens, long ones folded) and prints. It is rendered
from what the aggregation computed (tables.py's rows, not its markdown), with no timestamp: the same records give
the same bytes. The building blocks (``table``, ``figure``, ``page``, ...) also make a search's report page.
"""

from __future__ import annotations

import base64
import html
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from regsweep.aggregate.compare import Baseline, Comparison
from regsweep.aggregate.load import Sweep, job_order, job_seed
from regsweep.aggregate.output import write_text
from regsweep.aggregate.plots import PLOTS_DIR, caption
from regsweep.aggregate.summary import Descriptions
from regsweep.aggregate.tables import (
    COLUMNS_INTRO,
    COMPARISONS_NOTE,
    HTML_FILE,
    JOBS_FILE,
    LATEX_FILE,
    PAGE_JOB_METRICS,
    RESULT_COLUMNS,
    RESULTS_NOTE,
    RESULTS_TITLE,
    SUMMARY_FILE,
    Environments,
    NotedTable,
    answers,
    column_notes,
    comparison_detail_cells,
    comparisons_view,
    counted_statuses,
    job_cells,
    job_header,
    job_totals_line,
    model_size_table,
    penalty_table,
    problems,
    results_cells,
    robust_table,
    sparsity_table,
    sweep_environments,
    untested_note,
)
from regsweep.console import count
from regsweep.records import OK
from regsweep.sweep.plan import SweepCommand

FOLD_ROWS = 12  # a table with more rows is folded (<details>), its summary line saying how many
LEARNING_CURVES = "learning_curves"  # its own section, after the other figures
MIME = {".svg": "image/svg+xml", ".png": "image/png"}
# No fetch of any kind: images only from data: URIs, styles only inline; links stay links (navigation).
CONTENT_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
BREAKS = re.compile(r"([./_=,])(?=\w)")  # where a long name may wrap: after the dots, slashes, underscores, ...
NUMBER = re.compile(r"[-+−–]?[\d.,]+(e[-+]?\d+)?%?( ± [\d.,e+-]+)?( \[[^\]]*\])?|n/a|–|-")
CSS = """
:root { --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --soft: #f6f8fa; --accent: #0b5cad; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; color: var(--ink); background: #fff;
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 64rem; margin: 0 auto; padding: 1rem 1rem 3rem; }
h1 { font-size: 1.6rem; line-height: 1.25; margin: .5rem 0; overflow-wrap: anywhere; }
h2 { font-size: 1.25rem; margin: 2.2rem 0 .6rem; padding-bottom: .2rem; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.05rem; margin: 1.4rem 0 .4rem; }
p, li { overflow-wrap: anywhere; }
a { color: var(--accent); }
.lead { font-size: 1.05rem; }
.muted, figcaption, .note { color: var(--muted); font-size: .9rem; }
nav { display: flex; flex-wrap: wrap; gap: .2rem .9rem; padding: .5rem 0; border-bottom: 1px solid var(--line);
  font-size: .9rem; }
ul.answers { padding-left: 1.1rem; }
ul.answers > li { margin: .5rem 0; }
.verdict { font-weight: 650; }
.power { display: block; color: var(--muted); font-size: .9rem; }
table { border-collapse: collapse; width: 100%; margin: .4rem 0 1rem; font-size: .9rem;
  font-variant-numeric: tabular-nums; }
th, td { padding: .3rem .5rem; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top;
  overflow-wrap: break-word; }
th { background: var(--soft); font-weight: 600; }
td.num { text-align: right; }
details { margin: .4rem 0 1rem; }
summary { cursor: pointer; color: var(--accent); }
figure { margin: 1rem 0 1.6rem; }
figure img { display: block; max-width: 100%; height: auto; }
pre { background: var(--soft); padding: .6rem .8rem; border-radius: 6px; font-size: .85rem;
  white-space: pre-wrap; overflow-wrap: anywhere; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; font-size: .92em; }
@media (max-width: 44rem) {
  main { padding: .6rem .7rem 2rem; }
  table.stack thead { display: none; }
  table.stack, table.stack tbody, table.stack tr, table.stack td { display: block; width: 100%; }
  table.stack tr { border: 1px solid var(--line); border-radius: 6px; margin: 0 0 .6rem; padding: .2rem .5rem; }
  table.stack td { display: flex; justify-content: space-between; gap: 1rem; border: 0; padding: .15rem 0;
    text-align: right; }
  table.stack td::before { content: attr(data-label); color: var(--muted); text-align: left; flex: 0 0 40%; }
  table.stack td:first-child { font-weight: 600; }
}
@media print {
  body { font-size: 10pt; }
  main { max-width: none; padding: 0; }
  nav { display: none; }
  a { color: inherit; text-decoration: none; }
  h2, h3 { break-after: avoid; }
  figure, tr, li { break-inside: avoid; }
  details::details-content { content-visibility: visible; display: contents; }
  summary { color: inherit; }
}
"""


class Html(str):
    """Text that is already HTML (a link, a list): put in a page as it is, not escaped again."""


@dataclass(frozen=True)
class Section:
    anchor: str
    title: str
    body: list[str]  # HTML blocks


def anchor(title: str) -> str:
    """A section's id from its title: ``Best trial: 3`` -> ``best-trial-3``."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "section"


def inline(text: str, breaks: bool = False) -> Html:
    """Plain text as HTML: escaped, and ```code``` (as the markdown reports write paths) set as code; ``breaks``:
    see :func:`breakable`."""
    if isinstance(text, Html):
        return text
    parts = [breakable(part) if breaks else escape(part) for part in text.split("`")]
    return Html("".join(f"<code>{part}</code>" if index % 2 else part for index, part in enumerate(parts)))


def escape(text: object) -> str:
    return html.escape(str(text), quote=True)


def paragraph(text: str, css: str = "") -> Html:
    return Html(f"<p{f' class={css!r}' if css else ''}>{inline(text)}</p>")


def bullets(items: Iterable[str], css: str = "") -> Html:
    """A list; items are text, or Html as they are."""
    rows = "".join(f"<li>{inline(item)}</li>" for item in items)
    return Html(f"<ul{f' class={css!r}' if css else ''}>{rows}</ul>" if rows else "")


def link(href: str, text: str) -> Html:
    """A relative link (a job dir, a file beside the page), its path escaped for a URL."""
    return Html(f'<a href="{escape(quote(href))}">{breakable(text)}</a>')


def breakable(text: str) -> Html:
    """Escaped, with places to wrap after the separators of a long name (``data.batch_size``, ``ok/failed/missing``,
    ``regularizer=l1,seed=4``), so that a narrow table column wraps there rather than mid-word or not at all."""
    return Html(BREAKS.sub(r"\1<wbr>", escape(text)))


def fold(content: str, summary: str, folded: bool) -> Html:
    """``content`` behind a summary line the reader opens (<details>), or as it is."""
    return Html(f"<details><summary>{escape(summary)}</summary>{content}</details>" if folded else content)


def table(header: Sequence[str], rows: Sequence[Sequence[str]], what: str = "rows") -> Html:
    """A table whose rows stack as cards on a narrow screen (each cell labelled by its column), folded when it has
    more than FOLD_ROWS rows; numbers aligned right."""
    head = "".join(f"<th>{breakable(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(cell_html(label, cell) for label, cell in zip(header, row)) + "</tr>" for row in rows
    )
    markup = f'<table class="stack"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    return fold(markup, f"{count(len(rows), what.removesuffix('s'))}: show", len(rows) > FOLD_ROWS)


def cell_html(label: str, cell: str) -> str:
    """A cell labelled by its column; a number right-aligned, its ``± SE`` wrapping as one piece."""
    if isinstance(cell, Html):
        return f'<td data-label="{escape(label)}">{cell}</td>'
    if NUMBER.fullmatch(cell.strip()) is None:
        return f'<td data-label="{escape(label)}">{inline(cell, breaks=True)}</td>'
    return f'<td data-label="{escape(label)}" class="num">{escape(cell).replace("± ", "±&nbsp;")}</td>'


def noted_table(noted: NotedTable) -> list[str]:
    return [f"<h3>{escape(noted.title)}</h3>", paragraph(noted.note, "note"), table(noted.header, noted.rows)]


def code_block(lines: Iterable[str]) -> Html:
    return Html(f"<pre><code>{escape(chr(10).join(lines))}</code></pre>")


def figure(data: bytes, suffix: str, text: str, source: str | None = None) -> Html:
    """An image embedded as a data: URI (``suffix`` .svg or .png), captioned; ``source`` links the figure's file."""
    uri = f"data:{MIME[suffix]};base64,{base64.b64encode(data).decode('ascii')}"
    more = f" File: {link(source, source)}." if source else ""
    return Html(f'<figure><img src="{uri}" alt="{escape(text)}"><figcaption>{inline(text)}{more}</figcaption>'
                "</figure>")


def figure_file(png: Path, drawn: dict[Path, bytes], text: str, base: Path) -> Html:
    """A figure of a report: its vector drawing when there is one, else its PNG read from disk."""
    source = png.relative_to(base).as_posix()
    if png in drawn:
        return figure(drawn[png], ".svg", text, source)
    return figure(png.read_bytes(), ".png", text, source)


def page(title: str, lead: list[str], sections: list[Section]) -> str:
    """The whole document: head (charset, viewport, policy, CSS), title, lead paragraphs, contents, sections."""
    shown = [s for s in sections if s.body]
    contents = "".join(f'<a href="#{s.anchor}">{escape(s.title)}</a>' for s in shown)
    body = "".join(f'<section id="{s.anchor}"><h2>{escape(s.title)}</h2>{"".join(s.body)}</section>' for s in shown)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_POLICY}">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>\n"
        f"<body><main><h1>{escape(title)}</h1>{''.join(lead)}<nav>{contents}</nav>\n{body}</main></body></html>\n"
    )


def environment_body(found: Environments | None) -> list[str]:
    if found is None:
        return [paragraph("No readable job record names its environment (an older regsweep's, or none left).")]
    if len(found.ran) == 1:
        return [paragraph(line) for line in found.lines]
    caution, *rest = found.lines
    return [paragraph(caution, "note"), bullets(rest)]


# --- the sweep's page ------------------------------------------------------------------------------


def differences(sweep: Sweep) -> str:
    """``regularizer = none, l1, l2, l1l2``: each override that tells groups apart, with its values."""
    values = {key: list(dict.fromkeys(g.varying.get(key, "unset") for g in sweep.groups)) for key in sweep.varying_keys}
    return "; ".join(f"{key} = {', '.join(found)}" for key, found in values.items())


def seeds_text(sweep: Sweep) -> str:
    ok = sorted({len(g.with_status(OK)) for g in sweep.groups})
    if len(sweep.groups) == 1:
        return count(ok[0], "ok seed")
    return f"{count(ok[0], 'ok seed')} each" if len(ok) == 1 else f"{ok[0]}-{ok[-1]} ok seeds per group"


def question_body(sweep: Sweep, descriptions: Descriptions, comparisons: list[Comparison],
                  baseline: Baseline) -> list[str]:
    """What differs between the groups, and the one-line answers with their verdicts and power."""
    found = answers(sweep, descriptions, comparisons, baseline)
    if baseline.label is None or not found:
        return [paragraph(f"One group, {seeds_text(sweep)}: nothing to compare. The results below are its mean and "
                          "spread over seeds.")]
    question = f"{count(len(sweep.groups), 'group')} that differ in {differences(sweep)}; {seeds_text(sweep)}."
    body = [paragraph(question, "lead")]
    for metric in found:
        items = [
            Html(f'{inline(a.evidence)}: <span class="verdict">{escape(a.verdict)}</span>'
                 + (f'<span class="power">power: {escape(a.power)}</span>' if a.power else ""))
            for a in metric.answers
        ]
        body += [f"<h3>{escape(metric.title)}</h3>", bullets(items, "answers")]
    return body + [paragraph(found[0].intro, "note")]


def results_body(sweep: Sweep, descriptions: Descriptions) -> list[str]:
    header, rows = results_cells(sweep, descriptions, RESULT_COLUMNS, counted_statuses(sweep))
    body = [paragraph(RESULTS_NOTE, "note"), table(header, rows, "groups")]
    extra = (robust_table(sweep, descriptions), penalty_table(sweep), model_size_table(sweep),
             sparsity_table(sweep, descriptions))
    return body + [block for noted in extra if noted is not None for block in noted_table(noted)]


def figures_body(sweep: Sweep, plots: Sequence[Path], drawn: dict[Path, bytes], curves: bool) -> list[str]:
    """The figures (``curves``: the learning curves alone), each as summary.md lists them."""
    chosen = [p for p in plots if (p.stem == LEARNING_CURVES) == curves]
    return [figure_file(p, drawn, caption(p.stem), sweep.sweep_dir) for p in chosen]


def comparisons_body(comparisons: list[Comparison]) -> list[str]:
    view = comparisons_view(comparisons)
    if view is None:
        return []
    sentences = bullets(view.sentences)
    body = [paragraph(COMPARISONS_NOTE, "note"),
            fold(sentences, f"{count(len(view.sentences), 'sentence')}: show", len(view.sentences) > FOLD_ROWS)]
    if view.tested:
        body.append(table(*comparison_detail_cells(view.tested), "comparisons"))
    if view.untested:
        body.append(paragraph(untested_note(view.untested)))
    return body


def jobs_body(sweep: Sweep) -> list[str]:
    """Every job in sweep order: a link to its dir, its group and seed, then its status, epochs and key metrics."""
    header = ["job", "group", "seed", *job_header(PAGE_JOB_METRICS)]
    groups = {id(job): group.label for group in sweep.groups for job in group.jobs}
    rows = [[job_link(sweep, job.dir, job.name), groups.get(id(job), ""), str(job_seed(job)),
             *job_cells(job, PAGE_JOB_METRICS)] for job in sorted(sweep.jobs, key=job_order)]
    note = f"Each job's every metric: {JOBS_FILE}; its own files (record, curves, checkpoints): its dir."
    return [paragraph(note, "note"), table(header, rows, "jobs")]


def job_link(sweep: Sweep, job_dir: Path, text: str) -> Html:
    return link(job_dir.relative_to(sweep.sweep_dir).as_posix() + "/", text)


def problems_body(sweep: Sweep) -> list[str]:
    found = problems(sweep)
    if not found:
        return [paragraph("None: every job finished ok, each seed once, every file readable.")]
    header = ["job", "group", "what", "why"]
    return [table(header, [[job_link(sweep, p.job.dir, p.name), p.group, p.kind, p.reason] for p in found], "jobs")]


def reproduce_body(sweep: Sweep) -> list[str]:
    """The command that made the sweep, as recorded (sweep_command.json), and those that resume, browse and
    re-aggregate it."""
    where = shlex.quote(str(sweep.sweep_dir.resolve()))
    recorded = SweepCommand.load(sweep.sweep_dir)
    if recorded is not None and recorded.command:
        started = [f"cd {shlex.quote(recorded.cwd)}"] if recorded.cwd else []
        started.append(shlex.join(["python", *recorded.command]))
        note = ("The sweep, as it was started (sweep_command.json). With the same hydra.sweep.dir it resumes this "
                "sweep, keeping its finished jobs; with another (or none) it runs it again from scratch.")
    else:
        started, note = [], "This dir holds no sweep_command.json (a dir above several sweeps, or jobs run apart)."
    return [
        paragraph(note, "note"), *([code_block(started)] if started else []),
        paragraph("Resume it (the jobs that did not finish), browse every job's curves, rebuild this page:", "note"),
        code_block([f"regsweep-resume {where}", f"tensorboard --logdir {where}", f"regsweep-aggregate {where}"]),
    ]


def sweep_page(sweep: Sweep, descriptions: Descriptions, comparisons: list[Comparison], baseline: Baseline,
               plots: Sequence[Path], drawn: dict[Path, bytes]) -> str:
    """The page of a sweep: what it asked and the answers, the results, figures, curves, comparisons, jobs,
    problems, how to reproduce it, where it ran, and what the columns mean."""
    files = [link(name, name) for name in (SUMMARY_FILE, "summary.csv", JOBS_FILE, "comparisons.csv", LATEX_FILE)]
    lead = [paragraph(f"{job_totals_line(sweep)}. Sweep dir: `{sweep.sweep_dir.resolve()}`.", "lead"),
            Html(f'<p class="muted">Beside this page: {", ".join(files)}, {link(PLOTS_DIR + "/", PLOTS_DIR + "/")}.'
                 "</p>")]
    no_figures = [] if plots else [paragraph("No figures: aggregated without plots (--no-plots).")]
    sections = [
        Section("question", "Question and answers", question_body(sweep, descriptions, comparisons, baseline)),
        Section("results", RESULTS_TITLE, results_body(sweep, descriptions)),
        Section("figures", "Figures", figures_body(sweep, plots, drawn, curves=False) or no_figures),
        Section("curves", "Learning curves", figures_body(sweep, plots, drawn, curves=True)),
        Section("comparisons", "Comparisons", comparisons_body(comparisons)),
        Section("jobs", "Jobs", jobs_body(sweep)),
        Section("problems", "Problems", problems_body(sweep)),
        Section("reproduce", "Reproduce", reproduce_body(sweep)),
        Section("environment", "Environment", environment_body(sweep_environments(sweep))),
        Section("columns", "What the columns measure",
                [paragraph(COLUMNS_INTRO, "note"), bullets(column_notes(sweep, descriptions))]),
    ]
    return page(f"Sweep {sweep.sweep_dir.name}", lead, sections)


def write_sweep_page(sweep: Sweep, descriptions: Descriptions, comparisons: list[Comparison], baseline: Baseline,
                     plots: Sequence[Path], drawn: dict[Path, bytes]) -> Path:
    """report.html in the sweep dir (see :func:`sweep_page`)."""
    return write_text(sweep.sweep_dir / HTML_FILE, sweep_page(sweep, descriptions, comparisons, baseline, plots,
                                                              drawn))

