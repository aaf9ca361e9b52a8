"""The LaTeX format: a table as a ``table`` float around a booktabs ``tabular``, for a paper to ``\\input``."""

from __future__ import annotations

import re

# Characters LaTeX would read as markup (or, in the default font encoding, print as other glyphs),
# and the few non-ASCII ones the tables use.
_REPLACEMENTS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    "±": r"$\pm$",
    "–": "--",
}
_NEGATIVE = re.compile(r"(?<![\w.])-(?=\d)")  # the sign of a number (-0.5, [-0.01, ...]), not 1e-05's hyphen


def escape(text: str) -> str:
    """``text`` as LaTeX prints it literally, a number's minus sign as a minus rather than a hyphen."""
    return _NEGATIVE.sub(r"$-$", "".join(_REPLACEMENTS.get(char, char) for char in text))


def latex_table(header: list[str], rows: list[list[str]], caption: str) -> str:
    """A captioned table (needs ``\\usepackage{booktabs}``): the first column left-aligned, the others right."""
    spec = "l" + "r" * (len(header) - 1)
    return "\n".join([
        r"\begin{table}[ht]", r"\centering", rf"\caption{{{escape(caption)}}}",
        rf"\begin{{tabular}}{{{spec}}}", r"\toprule", _row(header), r"\midrule", *map(_row, rows), r"\bottomrule",
        r"\end{tabular}", r"\end{table}",
    ])  # fmt: skip


def _row(cells: list[str]) -> str:
    return " & ".join(map(escape, cells)) + r" \\"
