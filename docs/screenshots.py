"""The docs' screenshots of a search, taken with Debian's headless Chromium (Playwright).

    python docs/screenshots.py dashboard http://127.0.0.1:8265 docs/        # while it runs
    python docs/screenshots.py mlflow http://127.0.0.1:5000 cifar10-jpeg docs/
    python docs/screenshots.py report results/20260101-120000/cifar10-jpeg docs/

`dashboard` logs in to a running search's Ray dashboard with the token Ray wrote
(RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token) and saves dashboard-jobs.png and
dashboard-actors.png once a trial actor (ImplicitFunc) is ALIVE. `mlflow` saves the experiment's
runs (mlflow-ui.png) and the registered model's versions (mlflow-ui-model.png); both are named
after the search. `report` saves three clips of the experiment's report/report.html (run
`python -m tuner report RUN` first): report-overview.png, report-search.png, report-test.png.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WIDTH = 1400
# Each report clip runs from its first heading to the top of the next clip's first heading.
REPORT_CLIPS = {
    "report-overview.png": ("h1", "#params"),
    "report-search.png": ("#params", "#test"),
    "report-test.png": ("#test", None),
}


@contextmanager
def _browser() -> Iterator[Any]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def _top(page: Page, selector: str) -> float:
    box = page.locator(selector).first.bounding_box()
    if box is None:
        raise SystemExit(f"error: {selector} is not on the page")
    return float(box["y"])


# The right end of what lies between two heights: the page's column, or a table sticking out.
RIGHT_END = """([top, bottom]) => Math.max(...Array.from(document.body.querySelectorAll('*'))
    .map(e => e.getBoundingClientRect()).filter(r => r.top >= top && r.bottom <= bottom)
    .map(r => r.right), document.body.getBoundingClientRect().right)"""


def report(run_dir: Path, out: Path) -> None:
    html = run_dir / "report" / "report.html"
    if not html.is_file():
        raise SystemExit(f"error: no {html}: run `python -m tuner report {run_dir}` first")
    with _browser() as browser:
        page = browser.new_page(viewport={"width": WIDTH, "height": 1000})
        page.goto(html.resolve().as_uri(), wait_until="load")
        for name, (first, last) in REPORT_CLIPS.items():
            page.screenshot(path=str(out / name), clip=_clip(page, first, last), full_page=True)
            print(f"-> {out / name}")


def _clip(page: Page, first: str, last: str | None) -> dict[str, float]:
    """From a margin above `first` to just above `last` (or the page's end); sideways, the
    page's centred column with a margin, not the empty sides, but all of a table that sticks
    out of the column (the top-trials table can)."""
    y = max(0.0, _top(page, first) - 12)
    end = page.evaluate("document.documentElement.scrollHeight")
    bottom = _top(page, last) - 4 if last else float(end)
    x = max(0.0, float(page.evaluate("document.body.getBoundingClientRect().left")) - 24)
    right = float(page.evaluate(RIGHT_END, [y, bottom]))
    return {"x": x, "y": y, "width": right + 24 - x, "height": bottom - y}


def _token() -> str:
    """Where Ray keeps the dashboard token (the same lookup as the dashboard test)."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return os.environ["RAY_AUTH_TOKEN"]
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
    return Path(path).read_text().strip()


def dashboard(url: str, out: Path) -> None:
    with _browser() as browser:
        page = browser.new_page(viewport={"width": WIDTH, "height": 900})
        page.goto(f"{url}/#/jobs")
        page.get_by_placeholder("Enter your authentication token").fill(_token())
        page.get_by_role("button", name="Submit").click()
        running = page.get_by_role("row").filter(has_text="RUNNING")
        expect(running).not_to_have_count(0, timeout=60_000)
        page.screenshot(path=str(out / "dashboard-jobs.png"))
        print(f"-> {out / 'dashboard-jobs.png'}")
        _wait_for_trials(page, url)
        page.wait_for_timeout(2000)  # the table fills in its remaining columns
        page.screenshot(path=str(out / "dashboard-actors.png"))
        print(f"-> {out / 'dashboard-actors.png'}")


def _wait_for_trials(page: Page, url: str) -> None:
    """Trial actors exist only in the search stage, after a minute or two of planning: reload
    the Actors page until one is ALIVE (up to ten minutes)."""
    alive = page.get_by_role("row").filter(has_text="ImplicitFunc").filter(has_text="ALIVE")
    for _ in range(60):
        page.goto(f"{url}/#/actors")
        try:
            expect(alive.first).to_be_visible(timeout=10_000)
            return
        except AssertionError:
            continue
    raise SystemExit("error: no trial actor (ImplicitFunc) ALIVE after 10 minutes")


def mlflow(url: str, name: str, out: Path) -> None:
    from mlflow import MlflowClient

    experiment = MlflowClient(tracking_uri=url).get_experiment_by_name(name)
    if experiment is None:
        raise SystemExit(f"error: no experiment {name!r} at {url}")
    pages = {
        "mlflow-ui.png": f"{url}/#/experiments/{experiment.experiment_id}/runs",
        "mlflow-ui-model.png": f"{url}/#/models/{name}",
    }
    with _browser() as browser:
        for file, address in pages.items():
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(address, wait_until="load")
            page.wait_for_timeout(5000)  # the UI renders its tables after the data arrives
            _tidy(page)
            page.screenshot(path=str(out / file))
            page.close()
            print(f"-> {out / file}")


def _tidy(page: Page) -> None:
    """Best effort: close the assistant panel and unfold the search's nested runs."""
    for control in (
        page.get_by_role("button", name="Close"),
        # the parent run's unfold button, in the run-name cell
        page.locator("button[data-component-id*='runnamecellrenderer']"),
    ):
        if control.count():
            control.first.click()
            page.wait_for_timeout(1500)


def main(argv: list[str]) -> int:
    match argv:
        case ["report", run_dir, out]:
            report(Path(run_dir), Path(out))
        case ["dashboard", url, out]:
            dashboard(url.rstrip("/"), Path(out))
        case ["mlflow", url, name, out]:
            mlflow(url.rstrip("/"), name, Path(out))
        case _:
            print(__doc__, file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
