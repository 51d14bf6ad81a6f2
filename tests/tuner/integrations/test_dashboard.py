"""The Ray dashboard of a running search, seen in a real browser (Debian's headless Chromium).

Starts `python -m tuner run` (dashboard on by default), reads the URL it prints, checks that the
API refuses requests without the token, logs in through the dashboard's own token dialog as a
user would, and asserts the Jobs page shows the running search and the Actors page its trial
actors. Screenshots are saved in the test's temporary folder.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.tuner.conftest import tiny_spec

REPO = Path(__file__).resolve().parents[3]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.slow


def _token() -> str:
    if os.environ.get("RAY_AUTH_TOKEN"):
        return os.environ["RAY_AUTH_TOKEN"]
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
    return Path(path).read_text().strip()


@pytest.fixture
def running_search(tmp_path: Path):  # type: ignore[no-untyped-def]
    raw = tiny_spec("watched", str(tmp_path / "results"), num_samples=4)
    raw["base"]["dataset"] = {**raw["base"]["dataset"], "synthetic_train_size": 6000}
    # Long enough to outlive the browser's checks (it ended first once, at 8 epochs): the
    # fixture stops it with SIGINT when the test is done, so its length costs nothing.
    raw["scheduler"] = {"kind": "fifo", "metric": "val_loss", "mode": "min", "max_t": 60}
    spec_file = tmp_path / "watched.yaml"
    spec_file.write_text(yaml.safe_dump(raw))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuner", "run", str(spec_file), "--num-cpus", "2"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:  # keep draining stdout so the search never blocks on a full pipe
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "Ray dashboard:" in line:
                found.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        yield proc, lines, found, spec_file
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # a clean stop, as a user's Ctrl-C
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_dashboard_shows_the_running_search_and_its_trial_actors(
    running_search, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it with apt-get)")
    sync_api = pytest.importorskip("playwright.sync_api")
    proc, lines, found, spec_file = running_search
    assert found.wait(timeout=120), "".join(lines[-30:])
    banner = next(line for line in lines if "Ray dashboard:" in line)
    url = re.search(r"Ray dashboard: (http://\S+)", banner).group(1)  # type: ignore[union-attr]
    assert url.startswith("http://127.0.0.1:"), banner  # loopback unless asked otherwise
    assert "token authentication on" in banner
    assert _token() not in "".join(lines)  # where the token is, never the token

    with pytest.raises(urllib.error.HTTPError) as refused:  # no token, no API
        urllib.request.urlopen(f"{url}/api/jobs/", timeout=10)
    assert refused.value.code == 401

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{url}/#/jobs")
        page.get_by_placeholder("Enter your authentication token").fill(_token())
        page.get_by_role("button", name="Submit").click()
        job_row = page.get_by_role("row").filter(has_text=spec_file.name)
        sync_api.expect(job_row.filter(has_text="RUNNING")).to_have_count(1, timeout=60_000)
        page.screenshot(path=str(tmp_path / "dashboard-jobs.png"))

        deadline = time.monotonic() + 120
        alive = page.get_by_role("row").filter(has_text="ImplicitFunc").filter(has_text="ALIVE")
        while time.monotonic() < deadline and proc.poll() is None:
            page.goto(f"{url}/#/actors")
            try:
                sync_api.expect(alive.first).to_be_visible(timeout=10_000)
                break
            except AssertionError:
                continue
        page.screenshot(path=str(tmp_path / "dashboard-actors.png"))
        assert alive.count() >= 1, "no trial actor (ImplicitFunc) ALIVE on the Actors page"
        browser.close()
    assert proc.poll() is None, "the search ended before the dashboard was checked"
    assert (tmp_path / "dashboard-actors.png").stat().st_size > 0
