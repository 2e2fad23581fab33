"""optuna-dashboard on a study of each strategy, loaded in headless Chromium."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import optuna
import pytest

from pairsearch.search.strategies.genetic import GeneticSettings, run_genetic
from pairsearch.search.types import SearchSettings
from pairsearch.search.space import space_from_dict
from pairsearch.search.store.storage import open_storage
from pairsearch.search.strategies import run_grid, run_tpe

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed"),
              pytest.mark.process]  # a dashboard server and a browser in subprocesses

# The flags this machine's closed network needs (no background connections).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def render(url: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}",
                                 "--virtual-time-budget=10000", "--dump-dom", url],
                                capture_output=True, text=True, timeout=120)
    return result.stdout


def test_study_pages_render_their_trials(tmp_path):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    storage = open_storage(url)
    space = space_from_dict("tiny", {"params": {"model": ["mlp", "siamese"],
                                                "lr": [0.001, 0.01]}})
    settings = SearchSettings(folds=2, epochs=1, train_pairs=120, device="cpu")
    run_grid(space, settings, storage, "by-grid", progress=False)
    run_tpe(space, settings, storage, "by-tpe", trials=3, progress=False)
    run_genetic(space, settings, GeneticSettings(pop=3, gens=2), storage, "by-genetic",
                progress=False)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "pairsearch", "dashboard", "--storage", url,
                               "--port", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5)
                break
            except OSError:
                time.sleep(0.5)
        for name in ("by-grid", "by-tpe", "by-genetic"):
            study = optuna.load_study(study_name=name, storage=url)
            study_id = study._study_id
            dom = render(f"http://127.0.0.1:{port}/dashboard/studies/{study_id}")
            assert name in dom, f"{name}: the study page did not render"
            assert f"Best Trial (number={study.best_trial.number})" in dom, name
            table = render(f"http://127.0.0.1:{port}/dashboard/studies/{study_id}/trials")
            shown = {n for n in range(len(study.trials)) if f"Trial {n}" in table}
            assert shown == set(range(len(study.trials))), (name, shown)
    finally:
        server.terminate()
        server.wait(timeout=10)
