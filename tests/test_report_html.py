"""report.html as a reader sees it: one file that holds every figure and fetches nothing, in order, readable on a
narrow screen; rendered in a real headless browser (Debian's chromium, .ci/install-debian-packages.sh)."""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ElementTree
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import optuna
import pytest
from conftest import TINY, run_train
from servers import unavailable
from test_aggregate_fixtures import make_job, make_regularizer_sweep

from regsweep.aggregate import aggregate_sweep
from regsweep.aggregate.report_html import CONTENT_POLICY
from regsweep.aggregate.tables import HTML_FILE
from regsweep.search.study import SETTINGS_ATTR
from regsweep.search.study_report import write_study_report
from regsweep.sweep.plan import SweepPlan

SWEEP_SECTIONS = ["Question and answers", "Results (mean ± SE over seeds)", "Figures", "Learning curves",
                  "Comparisons", "Jobs", "Problems", "Reproduce", "Environment", "What the columns measure"]
COMMAND = ["train.py", "-m", "regularizer=none,l1,l2", "seed=0-3"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class Page(HTMLParser):
    """What a page is made of: its tags with their attributes, section titles, and text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.titles: list[str] = []
        self._in_h2 = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {name: value or "" for name, value in attrs}))
        self._in_h2 = tag == "h2"
        if tag == "h2":
            self.titles.append("")

    def handle_endtag(self, tag: str) -> None:
        self._in_h2 = self._in_h2 and tag != "h2"

    def handle_data(self, data: str) -> None:
        if self._in_h2:
            self.titles[-1] += data

    def attributes(self, tag: str) -> list[dict[str, str]]:
        return [attrs for name, attrs in self.tags if name == tag]


def decoded_image(uri: str) -> str:
    """The type of a data: URI's image, after checking that it decodes as one."""
    kind, _, data = uri.removeprefix("data:").partition(";base64,")
    content = base64.b64decode(data, validate=True)
    if kind == "image/svg+xml":
        assert ElementTree.fromstring(content).tag == "{http://www.w3.org/2000/svg}svg"
    else:
        assert kind == "image/png" and content.startswith(PNG_SIGNATURE)
    return kind


def assert_self_contained(page: Page) -> None:
    """No script, stylesheet, frame or font to fetch; every image inside the page; links only to files beside it."""
    assert not [tag for tag, _ in page.tags if tag in ("script", "link", "iframe", "object", "embed")]
    policy = [attrs["content"] for attrs in page.attributes("meta") if attrs.get("http-equiv")]
    assert policy == [CONTENT_POLICY]
    assert page.attributes("img") and all(attrs["src"].startswith("data:") for attrs in page.attributes("img"))
    assert not [attrs for attrs in page.attributes("a") if re.match(r"[a-z]+:", attrs["href"])]  # none absolute


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """The fixture's 3 regularizers x 4 seeds, one more job failed and one missing, started by a recorded command."""
    sweep_dir = make_regularizer_sweep(tmp_path / "sweep")
    make_job(sweep_dir, 12, ["regularizer=l1", "seed=4"], 0.0, status="failed", error="DivergenceError: loss is nan")
    missing = sweep_dir / "13_regularizer=l2,seed=4" / ".hydra"
    missing.mkdir(parents=True)
    (missing / "overrides.yaml").write_text("- regularizer=l2\n- seed=4\n")
    SweepPlan(COMMAND[2:], COMMAND, str(tmp_path)).save(sweep_dir)
    return sweep_dir


def test_the_sweep_page_holds_everything_in_order_and_fetches_nothing(sweep: Path) -> None:
    aggregate_sweep(sweep)
    text = (sweep / HTML_FILE).read_text(encoding="utf-8")
    page = Page(text)
    assert page.titles == SWEEP_SECTIONS
    assert_self_contained(page)
    images = [decoded_image(attrs["src"]) for attrs in page.attributes("img")]
    assert images == ["image/svg+xml"] * len(list((sweep / "plots").glob("*.png")))  # every figure, vector
    assert '<span class="verdict">no clear difference</span>' in text
    assert "power: n = 4/4 detects ≥ 3.07 pp at 80% power" in text
    assert "failed</td>" in text and "DivergenceError: loss is nan" in text and "missing</td>" in text
    assert f"cd {sweep.parent}\npython train.py -m regularizer=none,l1,l2 seed=0-3" in html.unescape(text)
    assert f"tensorboard --logdir {sweep.resolve()}" in text
    jobs = {unquote(attrs["href"]) for attrs in page.attributes("a") if attrs["href"].endswith("/")} - {"plots/"}
    assert len(jobs) == 14 and all((sweep / job).is_dir() for job in jobs)  # every job, linked by its relative dir
    assert "<details><summary>14 jobs: show</summary>" in text  # a long table, folded


def test_the_page_is_the_same_bytes_for_the_same_records_and_says_when_it_has_no_figures(sweep: Path) -> None:
    aggregate_sweep(sweep)
    first = (sweep / HTML_FILE).read_bytes()
    aggregate_sweep(sweep)
    assert (sweep / HTML_FILE).read_bytes() == first
    aggregate_sweep(sweep, plots=False)
    text = (sweep / HTML_FILE).read_text(encoding="utf-8")
    assert not Page(text).attributes("img") and "No figures: aggregated without plots (--no-plots)." in text


def make_study(study_dir: Path) -> optuna.Study:
    """A maximizing study of 6 trials over lr and the regularizer, one of them failed, each naming its job dir."""
    study = optuna.create_study(direction="maximize", study_name="optuna-digits")
    study.set_user_attr(SETTINGS_ATTR, {"fixed_overrides": ["hparams_search=optuna", "trainer.max_epochs=3"],
                                        "seeds_per_trial": 1, "objectives": ["val/acc"]})
    space = {"optimizer.lr": optuna.distributions.FloatDistribution(1e-4, 3e-2, log=True),
             "regularizer": optuna.distributions.CategoricalDistribution(["none", "l1", "l2"])}
    for number, (lr, regularizer) in enumerate([(1e-3, "l1"), (3e-3, "none"), (2e-4, "l2"), (1e-2, "l1"),
                                                (5e-4, "none"), (2e-2, "l2")]):
        failed = number == 4
        study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.FAIL if failed else optuna.trial.TrialState.COMPLETE,
            value=None if failed else 0.9 + number / 100, params={"optimizer.lr": lr, "regularizer": regularizer},
            distributions=space, user_attrs={"job_dirs": [f"trial{number}_seed0"],
                                             **({"reason": "DivergenceError: loss is nan"} if failed else {})}))
    return study


def test_a_study_dir_gets_its_page_beside_report_md(tmp_path: Path) -> None:
    write_study_report(make_study(tmp_path), tmp_path, str(tmp_path / "journal.log"))
    text = (tmp_path / HTML_FILE).read_text(encoding="utf-8")
    page = Page(text)
    assert page.titles == ["Best trial: 5", "Top 5 trials by val/acc", "Parameter importances (fANOVA, val/acc)",
                           "Failed and pruned trials", "Plots", "Reproduce", "Environment"]
    assert_self_contained(page)
    assert [decoded_image(attrs["src"]) for attrs in page.attributes("img")] == ["image/svg+xml"] * 3
    assert "python train.py trainer.max_epochs=3 optimizer.lr=0.02 regularizer=l2 -m seed=0-9" in text
    assert f"python train.py -m hparams_search=optuna trainer.max_epochs=3 hydra.sweep.dir={tmp_path}" in text
    assert '<a href="trial4_seed0/">trial4_<wbr>seed0</a>' in text and "DivergenceError: loss is nan" in text


# --- in a real browser ---------------------------------------------------------------------------------------

NARROW, WIDE = 500, 1280  # CSS pixels: the narrowest window headless chromium opens, and a desktop's
# Run in a copy of the page, without its policy (which would stop it, and would hide a fetch the page tried): opens
# every folded table, then records each image's load and every element that reaches past the window's right edge.
PROBE = """<script>addEventListener("load", () => {
  document.querySelectorAll("details").forEach(d => d.open = true);
  const images = [...document.images].map(i => i.complete && i.naturalWidth > 0);
  const wide = [...document.querySelectorAll("body *")].filter(e => e.getBoundingClientRect().right > innerWidth + 1)
    .map(e => e.tagName + " " + e.textContent.slice(0, 40));
  document.body.dataset.probe = JSON.stringify({images, wide, width: innerWidth});
});</script>"""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        unavailable("chromium", "not installed (run .ci/install-debian-packages.sh)")
    return found


def browse(page: Path, tmp_path: Path, width: int, *arguments: str) -> Path:
    """Open ``page`` in headless chromium, every host name unresolvable and the network logged; returns the log."""
    net_log = tmp_path / f"net-{width}.json"
    command = [chromium(), "--headless", "--disable-gpu", "--no-sandbox", f"--user-data-dir={tmp_path / 'profile'}",
               "--no-first-run", "--disable-extensions", "--hide-scrollbars", "--host-resolver-rules=MAP * ~NOTFOUND",
               f"--log-net-log={net_log}", "--virtual-time-budget=10000", f"--window-size={width},2000", *arguments,
               page.as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    (tmp_path / f"dom-{width}.html").write_text(done.stdout, encoding="utf-8")
    return net_log


def page_requests(net_log: Path) -> list[str]:
    """The URLs the page (a file:// document) asked the network for; the browser's own update checks are not its."""
    log = json.loads(net_log.read_text(encoding="utf-8"))
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [event["params"]["url"] for event in log["events"]
            if event["type"] == start and "file://" in event["params"].get("network_isolation_key", "")
            and not event["params"]["url"].startswith(("file:", "data:"))]


def probe(page_file: Path, tmp_path: Path, width: int) -> tuple[dict, list[str]]:
    """The probe's findings at ``width``, and the page's network requests."""
    copy = tmp_path / f"probed-{page_file.name}"
    text = page_file.read_text(encoding="utf-8").replace(f' http-equiv="Content-Security-Policy" '
                                                         f'content="{CONTENT_POLICY}"', "")
    copy.write_text(text.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    requests = page_requests(browse(copy, tmp_path, width, "--dump-dom"))
    found = re.search(r'data-probe="([^"]*)"', (tmp_path / f"dom-{width}.html").read_text(encoding="utf-8"))
    assert found, "the probe did not run"
    return json.loads(html.unescape(found[1])), requests


def test_the_network_check_sees_a_page_that_fetches(tmp_path: Path) -> None:
    """The control: a page with an image and a stylesheet on the network is caught asking for them."""
    fetching = tmp_path / "fetching.html"
    fetching.write_text('<!DOCTYPE html><img src="https://example.com/a.png">'
                        '<link rel="stylesheet" href="http://fonts.example.org/f.css">', encoding="utf-8")
    requests = page_requests(browse(fetching, tmp_path, NARROW, "--dump-dom"))
    assert sorted(requests) == ["http://fonts.example.org/f.css", "https://example.com/a.png"]


@pytest.mark.parametrize("width", [NARROW, WIDE])
def test_in_a_browser_every_figure_loads_nothing_is_fetched_and_nothing_is_wider_than_the_window(
    sweep: Path, tmp_path: Path, width: int
) -> None:
    aggregate_sweep(sweep)
    found, requests = probe(sweep / HTML_FILE, tmp_path, width)
    assert requests == []
    assert found["width"] == width and len(found["images"]) == 4 and all(found["images"])
    assert found["wide"] == []  # no sideways scrolling, the folded tables open


@pytest.mark.parametrize("width", [NARROW, WIDE])
def test_in_a_browser_the_study_page_loads_and_fits(tmp_path: Path, width: int) -> None:
    study_dir = tmp_path / "study"
    study_dir.mkdir()
    write_study_report(make_study(study_dir), study_dir, str(study_dir / "journal.log"))
    found, requests = probe(study_dir / HTML_FILE, tmp_path, width)
    assert requests == [] and len(found["images"]) == 3 and all(found["images"]) and found["wide"] == []


def test_the_screenshot_shows_the_page(sweep: Path, tmp_path: Path) -> None:
    """What a reader's browser draws of the page itself (its policy in force): not a blank window."""
    from PIL import Image

    aggregate_sweep(sweep)
    shot = tmp_path / "report.png"
    browse(sweep / HTML_FILE, tmp_path, WIDE, f"--screenshot={shot}")
    with Image.open(shot) as image:
        assert image.size == (WIDE, 2000)
        colors = image.convert("L").getcolors(maxcolors=256 * 256)
    assert len(colors) > 50  # text, tables and figures in many shades, not one background color


@pytest.mark.slow
def test_a_multirun_leaves_a_page_with_its_command(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "multirun"
    done = run_train("-m", "regularizer=none,l2", "seed=0,1", *TINY, f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    text = (sweep_dir / HTML_FILE).read_text(encoding="utf-8")
    assert Page(text).titles == SWEEP_SECTIONS
    text = html.unescape(text)
    assert "-m regularizer=none,l2 seed=0,1 trainer.max_epochs=2" in text and "Every job: regsweep" in text
