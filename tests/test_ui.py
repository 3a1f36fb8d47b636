"""The MLflow UI as a person sees it: ``mlflow ui`` on loopback over a small study, in headless Chromium.

Screenshots go to test-artifacts/ui/. With FMNIST_UPDATE_DOCS_SCREENSHOT=1 the runs-table shot, the report's
top, a 2-D view's page with a tooltip open and the experiment's models page also replace docs/img/mlflow-ui.png,
docs/img/report-top.png, docs/img/view-hover.png and docs/img/models-page.png (the README's pictures).
"""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import REAL_DATA
from stores import BIN, ROOT, fmnist_env, fmnist_here, run_ids_in

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

CHROMIUM = os.environ.get("FMNIST_CHROMIUM", "/usr/bin/chromium")
# Offline and sandbox-free (CI containers run as root without user namespaces).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
SHOTS = ROOT / "test-artifacts" / "ui"
DOCS_SHOT = ROOT / "docs" / "img" / "mlflow-ui.png"
DOCS_REPORT_SHOT = ROOT / "docs" / "img" / "report-top.png"
DOCS_VIEW_SHOT = ROOT / "docs" / "img" / "view-hover.png"
DOCS_MODELS_SHOT = ROOT / "docs" / "img" / "models-page.png"
MODELS = ["lda", "logreg"]


def _missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"Chromium not found at {CHROMIUM} (Debian: apt-get install chromium; or set FMNIST_CHROMIUM)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed (pip install playwright; no browser download needed)"
    if not (REAL_DATA / "train-images-idx3-ubyte.gz").exists():
        return f"real Fashion-MNIST files not found in {REAL_DATA} (set FMNIST_TEST_DATA_DIR)"
    return None


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A sqlite store holding extract, classify (2 models) and visualize runs on a small real subset."""
    why = _missing()
    if why:
        pytest.skip(why)
    d = tmp_path_factory.mktemp("ui-study")
    uri = f"sqlite:///{d / 'mlflow.db'}"
    env = fmnist_env(uri, "fmnist", REAL_DATA)
    common = ["--feature", "raw", "--subset", "300", "--no-progress"]
    steps = [["extract", *common]]
    steps += [["classify", *common, "--model", m, "--tune", "false", "--n-jobs", "1"] for m in MODELS]
    steps.append(["visualize", *common, "--method", "pca", "--n-samples", "200"])
    results = [fmnist_here(step, env, d) for step in steps]  # what the UI shows, not how it was computed
    for r in results:
        assert r.returncode == 0, r.stderr[-3000:]
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("fmnist")
    runs = client.search_runs([exp.experiment_id])
    visualize = next(r for r in runs if r.data.tags.get("fmnist.step") == "visualize")
    classify = {r.data.params["model"]: r for r in runs if r.data.tags.get("fmnist.step") == "classify"}
    assert sorted(classify) == MODELS and run_ids_in(results[1].stderr)[-1] == classify["lda"].info.run_id
    png = Path(client.download_artifacts(visualize.info.run_id, "embedding.png", str(d / "dl")))
    return {"dir": d, "uri": uri, "experiment_id": exp.experiment_id, "classify": classify,
            "visualize": visualize, "embedding_png": png}


@pytest.fixture(scope="module")
def ui(study):
    """``fmnist ui`` (what ``make ui`` runs: ``mlflow ui`` after printing the runs table's link) on a free
    loopback port; the link it printed is ``study["ui_link"]``. Stopped (its whole process group) at the end."""
    from fmnist.server import free_port

    port = free_port()
    env = {**fmnist_env(study["uri"], "fmnist", REAL_DATA), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = open(study["dir"] / "ui.log", "wb")
    proc = subprocess.Popen([str(BIN / "fmnist"), "ui", "--host", "127.0.0.1", "--port", str(port)],
                            cwd=study["dir"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, (study["dir"] / "ui.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "mlflow ui not healthy after 120 s"
            time.sleep(0.5)
        said = (study["dir"] / "ui.log").read_text()
        study["ui_link"] = said.split("[fmnist] MLflow UI for ", 1)[1].split(": open ", 1)[1].split()[0]
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()


@pytest.fixture
def page(ui):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            pg = browser.new_page(viewport={"width": 1600, "height": 800})
            pg.set_default_timeout(60_000)
            yield pg
        finally:
            browser.close()


def _close_assistant(page) -> None:
    """MLflow 3 opens an assistant side panel; close it so the table gets the width."""
    close = page.get_by_role("button", name="Close", exact=True)
    if close.count():
        close.first.click()


def _toggle_column(page, name: str) -> None:
    """Tick (or untick) a column in the runs table's "Columns" picker, as a person does: search, click its box."""
    page.get_by_placeholder("Search columns").fill(name)
    nodes = page.locator(".du-bois-light-tree-treenode")
    page.wait_for_timeout(300)
    for i in range(nodes.count()):
        if nodes.nth(i).inner_text().strip() == name:
            nodes.nth(i).locator(".du-bois-light-tree-checkbox").click()
            return
    raise AssertionError(f"no column {name!r} in the picker: {nodes.all_inner_texts()}")


def _close(cell: str, value: float) -> bool:
    """The UI rounds and trims metric values (0.72, 0.7183...): compare as numbers."""
    try:
        shown = float(cell.rstrip(".…"))
    except ValueError:
        return False
    digits = len(cell.rstrip(".…").split(".")[-1]) if "." in cell else 0
    return abs(shown - value) <= 0.5 * 10 ** -digits + 1e-9


def _rows(page) -> list[str]:
    """Text of each table row; the grid renders a row in two parts (pinned name + the rest), joined here."""
    parts: dict[str, list[str]] = {}
    rows = page.locator("[role=row][row-index]")
    for i in range(rows.count()):
        parts.setdefault(rows.nth(i).get_attribute("row-index"), []).append(rows.nth(i).inner_text())
    return [" | ".join(p) for p in parts.values()]


def test_runs_table_shows_feature_model_and_accuracy(study, ui, page):
    # the link `make ui` prints opens the runs table, not the UI's empty GenAI overview
    assert study["ui_link"] == f"{ui}/#/experiments/{study['experiment_id']}/runs"
    page.goto(study["ui_link"], wait_until="domcontentloaded")
    page.get_by_text("classify-raw-lda").first.wait_for()
    _close_assistant(page)
    page.get_by_role("button", name="Columns", exact=True).click()
    for name in ["Dataset", "Source", "Models", "feature", "model", "test_accuracy"]:  # the first three: room
        _toggle_column(page, name)
    page.keyboard.press("Escape")
    page.get_by_role("columnheader", name="test_accuracy").first.wait_for()
    page.wait_for_timeout(500)
    page.screenshot(path=str(SHOTS / "runs-table.png"))
    if os.environ.get("FMNIST_UPDATE_DOCS_SCREENSHOT") == "1":
        DOCS_SHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHOTS / "runs-table.png", DOCS_SHOT)

    headers = [h.strip() for h in page.locator("[role=columnheader]").all_inner_texts()]
    assert {"Run Name", "feature", "model", "test_accuracy", "Parameters", "Metrics"} <= set(headers)
    rows = _rows(page)
    for model, run in study["classify"].items():
        (row,) = [r for r in rows if f"classify-raw-{model}" in r]
        acc = run.data.metrics["test_accuracy"]
        cells = [c.strip() for c in row.replace("|", "\n").splitlines() if c.strip()]
        assert "raw" in cells and model in cells, row
        assert any(_close(c, acc) for c in cells), (acc, row)
    assert any("visualize-raw-pca" in r for r in rows) and any("extract-raw" in r for r in rows)


def test_models_page_names_each_model_and_shows_its_test_accuracy(study, ui, page):
    """The experiment's models page (MLflow 3.17 calls it "Agent versions"): one row per classify run, named after
    what it is, with the test accuracy linked to it and the dataset it was measured on."""
    page.goto(f"{ui}/#/experiments/{study['experiment_id']}/models", wait_until="domcontentloaded")
    page.get_by_text("lda-raw", exact=True).first.wait_for()
    _close_assistant(page)
    page.get_by_role("button", name="Columns", exact=True).click()
    page.wait_for_timeout(300)
    for label in ["Logged from", "Dataset", "No dataset", "Parameters"]:  # room for the accuracy
        page.get_by_text(label, exact=True).last.click()
    group = page.locator(".du-bois-light-tree-treenode").filter(has_text="Dataset: fashion-mnist-test")
    group.get_by_text("Dataset: ").click()  # untick its metrics, then tick the two worth a column
    group.locator(".du-bois-light-tree-switcher").click()
    page.wait_for_timeout(300)
    for metric in ["test_accuracy", "macro_f1"]:
        page.locator(".du-bois-light-tree-treenode").filter(has_text=metric).get_by_text(metric, exact=True).first.click()
    page.keyboard.press("Escape")
    page.get_by_role("columnheader", name="test_accuracy").first.wait_for()
    page.wait_for_timeout(500)
    page.screenshot(path=str(SHOTS / "models-page.png"))
    if os.environ.get("FMNIST_UPDATE_DOCS_SCREENSHOT") == "1":
        shutil.copyfile(SHOTS / "models-page.png", DOCS_MODELS_SHOT)

    text = page.inner_text("body")
    assert "Dataset:" in text and "fashion-mnist-test" in text  # the metrics' dataset heads their columns
    rows = _rows(page)
    for model, run in study["classify"].items():
        (row,) = [r for r in rows if f"{model}-raw" in r]
        cells = [c.strip() for c in row.replace("|", "\n").splitlines() if c.strip()]
        assert f"classify-raw-{model}" in cells, row  # its source run
        assert any(_close(c, run.data.metrics["test_accuracy"]) for c in cells), row
    assert not [r for r in rows if "image_model" in r or r.split("|")[0].strip().endswith(" model")]


def test_artifact_view_shows_embedding_png(study, ui, page):
    run = study["visualize"]
    page.goto(f"{ui}/#/experiments/{study['experiment_id']}/runs/{run.info.run_id}/artifacts",
              wait_until="domcontentloaded")
    page.get_by_text("embedding.png", exact=True).first.click()
    # The preview is the logged file: the browser decoded an image of exactly the PNG's size.
    width, height = struct.unpack(">II", study["embedding_png"].read_bytes()[16:24])
    page.wait_for_function(
        "([w, h]) => [...document.images].some(i => i.complete && i.naturalWidth === w && i.naturalHeight === h)",
        arg=[width, height])
    _close_assistant(page)
    page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / "embedding-artifact.png"))
    assert page.get_by_text("visualize-raw-pca").first.is_visible()


def test_a_view_page_shows_the_garment_under_the_pointer_offline(study):
    """A visualize run's view.html from file:// with every network request blocked and counted: hovering a
    Trouser shows its image (decoded), its class and its test index, and nothing was requested. The shot goes to
    test-artifacts/ui/view-hover.png (with FMNIST_UPDATE_DOCS_SCREENSHOT=1 also docs/img/view-hover.png)."""
    from mlflow import MlflowClient
    from playwright.sync_api import sync_playwright

    run = study["visualize"].info.run_id
    page_file = Path(MlflowClient(study["uri"]).download_artifacts(run, "view.html", str(study["dir"] / "dl-view")))
    requests = []

    def block(route):
        if route.request.url.startswith(("file:", "data:")):
            route.continue_()
        else:
            requests.append(route.request.url)
            route.abort()

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 760})
            page.route("**/*", block)
            page.goto(page_file.as_uri(), wait_until="load")
            page.wait_for_function("""() => { try { return !!Bokeh.index.get_one(Bokeh.documents[0].roots()[0]).frame; }
                                            catch (e) { return false; } }""")
            # where the first Trouser point is drawn, in page coordinates
            at = page.evaluate("""() => {
                const plot = Bokeh.documents[0].roots()[0], view = Bokeh.index.get_one(plot);
                const r = plot.renderers.find(r => r.name === 'Trouser'), d = r.data_source.data;
                const box = view.el.getBoundingClientRect();
                return {x: box.left + view.frame.x_scale.compute(d.x[0]), y: box.top + view.frame.y_scale.compute(d.y[0]),
                        index: Number(d.test_index[0])};
            }""")
            page.mouse.move(at["x"], at["y"])
            thumb = page.locator("img.fmnist-thumb").first  # inside Bokeh's (open) shadow DOM
            thumb.wait_for(state="visible")
            assert thumb.evaluate("i => i.complete && i.naturalWidth > 0")
            tip = thumb.locator("xpath=../..").inner_text()
            assert "Trouser" in tip and f"test image #{at['index']}" in tip, tip
            page.screenshot(path=str(SHOTS / "view-hover.png"))
            if os.environ.get("FMNIST_UPDATE_DOCS_SCREENSHOT") == "1":
                shutil.copyfile(SHOTS / "view-hover.png", DOCS_VIEW_SHOT)
        finally:
            browser.close()
    assert requests == []  # the page made no network request


def test_team_server_ui_behind_basic_auth(team_server, real_data_dir, tmp_path):
    """A colleague with READ logs in through the browser's basic-auth prompt and sees the runs; no login, no page."""
    why = _missing()
    if why:
        pytest.skip(why)
    from mlflow import MlflowClient
    from playwright.sync_api import sync_playwright

    exp = "ui-accounts"
    editor = team_server.add_user("ui-editor", (exp, "EDIT"))
    viewer = team_server.add_user("ui-viewer", (exp, "READ"))
    env = team_server.as_user(fmnist_env(team_server.uri, exp, real_data_dir), "ui-editor", editor)
    ex = fmnist_here(["extract", "--feature", "raw", "--subset", "150", "--seed", "9", "--no-progress"], env,
                     tmp_path)
    assert ex.returncode == 0, ex.stderr[-3000:]
    exp_id = MlflowClient(team_server.uri).get_experiment_by_name(exp).experiment_id
    url = f"{team_server.uri}/#/experiments/{exp_id}/runs"
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            anonymous = browser.new_page()
            try:  # without credentials Chromium gets the 401 and refuses the page
                refused = anonymous.goto(url, wait_until="domcontentloaded").status == 401
            except Exception as e:  # playwright's Error: net::ERR_INVALID_AUTH_CREDENTIALS
                refused = "ERR_INVALID_AUTH_CREDENTIALS" in str(e)
            assert refused
            # http_credentials answers the browser's basic-auth prompt, as a person typing them in would.
            ctx = browser.new_context(http_credentials={"username": "ui-viewer", "password": viewer},
                                      viewport={"width": 1600, "height": 800})
            page = ctx.new_page()
            page.set_default_timeout(60_000)
            assert page.goto(url, wait_until="domcontentloaded").status == 200
            page.get_by_text("extract-raw").first.wait_for()
            _close_assistant(page)
            page.screenshot(path=str(SHOTS / "team-server-logged-in.png"))
            assert any("extract-raw" in r for r in _rows(page))
        finally:
            browser.close()


def test_report_html_reads_on_a_laptop_screen(study, tmp_path):
    """The rendered report in headless Chromium at a laptop's 1366x768: each 2-D view at least half the page
    wide (titles and legends readable), no code shown; a screenshot kept in test-artifacts/ui/."""
    from playwright.sync_api import sync_playwright

    env = fmnist_env(study["uri"], "fmnist", REAL_DATA)
    out = tmp_path / "report.html"
    rep = fmnist_here(["report", "--output", str(out)], env, study["dir"])
    assert rep.returncode == 0, rep.stderr[-3000:]
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.goto(out.as_uri(), wait_until="load")
            views = page.locator("img.fmnist-embedding")
            assert views.count() == 1  # the study's one view (raw / pca)
            views.first.scroll_into_view_if_needed()
            width = views.first.evaluate("i => i.getBoundingClientRect().width")
            natural = views.first.evaluate("i => i.naturalWidth")
            assert width >= 0.4 * 1366 and natural > 0, (width, natural)
            # the figure links to its page, copied beside the report
            href = page.locator("a.fmnist-view-link").first.get_attribute("href")
            assert href == "views/raw-pca.html" and (out.parent / href).is_file()
            assert page.locator(".jp-InputArea-editor").count() == 0  # no code for readers
            page.screenshot(path=str(SHOTS / "report-embeddings.png"))
            page.goto(out.as_uri(), wait_until="load")
            page.screenshot(path=str(SHOTS / "report-top.png"))
            if os.environ.get("FMNIST_UPDATE_DOCS_SCREENSHOT") == "1":
                shutil.copyfile(SHOTS / "report-top.png", DOCS_REPORT_SHOT)
        finally:
            browser.close()
