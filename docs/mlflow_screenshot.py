"""Screenshots of a search in the MLflow UI, with Debian's headless Chromium (Playwright).

    python docs/mlflow_screenshot.py http://127.0.0.1:5000 cifar10-quick docs/mlflow-ui.png

Takes the experiment's runs (the search's parent run with its trials and seeds nested) and the
registered model's versions, one PNG each (`<out>` and `<out stem>-model.png`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from playwright.sync_api import sync_playwright

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def main(url: str, name: str, out: Path) -> int:
    experiment = MlflowClient(tracking_uri=url).get_experiment_by_name(name)
    if experiment is None:
        print(f"error: no experiment {name!r} at {url}", file=sys.stderr)
        return 1
    pages = {
        out: f"{url}/#/experiments/{experiment.experiment_id}/runs",
        out.with_name(f"{out.stem}-model.png"): f"{url}/#/models/{name}",
    }
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS)
        for path, address in pages.items():
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(address, wait_until="load")
            page.wait_for_timeout(5000)  # the UI renders its tables after the data arrives
            _tidy(page)
            page.screenshot(path=str(path))
            page.close()
            print(f"-> {path}")
        browser.close()
    return 0


def _tidy(page: Any) -> None:
    """Best effort: close the assistant panel and unfold the search's nested runs."""
    for control in (
        page.get_by_role("button", name="Close"),
        # the parent run's unfold button, in the run-name cell
        page.locator("button[data-component-id*='runnamecellrenderer']"),
    ):
        if control.count():
            control.first.click()
            page.wait_for_timeout(1500)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
