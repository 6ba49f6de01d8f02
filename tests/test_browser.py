"""End to end in a real browser: the FiftyOne App with the @samrs/samrs plugin,
driven by Playwright in Debian's headless Chromium.

The App server runs in a subprocess on a free localhost port, on the same
database as this test (``FIFTYONE_DATABASE_URI`` of this process's mongod, the
test's ``FIFTYONE_DATABASE_NAME``) and with ``FIFTYONE_PLUGINS_DIR`` holding a
link to the plugin. The App opens on a generated DOTA dataset; everything
after that happens in the App, as a user would do it: find the plugin's
operators in the operator browser, import a generated HRSC2016 folder (which
opens the new dataset), run "Run SAM" with the tiny random SAM immediately and
see the new fields in the sidebar, evaluate the masks against HRSC's GT masks
(which loads the ``low_iou`` view), open the QA panel, export a SAMRS tree,
and see a failing run explain itself.

Screenshots go to ``test-artifacts/screenshots/`` (``scripts/update_screenshots.sh``
copies them to ``docs/img/`` for the README). Playwright never downloads a
browser here: without a ``chromium`` executable the test is skipped, saying so.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from plugin_fixtures import checkpoint, link_plugin  # noqa: F401 - fixture

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
SHOTS = REPO / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]
OPERATOR_LABELS = ["SAMRS: Import dataset", "SAMRS: Run SAM", "SAMRS: Evaluate masks",
                   "SAMRS: Prompt study", "SAMRS: Export"]
VIEWPORT = {"width": 1400, "height": 900}


def _chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _database_uri():
    """The MongoDB this test process uses, for the server subprocess."""
    if os.environ.get("FIFTYONE_DATABASE_URI"):
        return os.environ["FIFTYONE_DATABASE_URI"]
    import fiftyone.core.odm as foo

    host, port = foo.get_db_client().address
    return "mongodb://%s:%d" % (host, port)


@pytest.fixture(scope="module")
def chromium_path():
    path = _chromium()
    if path is None:
        pytest.skip("no `chromium` executable: install Debian's chromium (apt-get install "
                    "chromium chromium-driver, as .ci/run does) to run the App end-to-end "
                    "test; Playwright is never allowed to download a browser")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as e:
        pytest.skip("playwright is not installed: %s" % e)
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """The dataset the App opens on: three generated DOTA images."""
    import fiftyone as fo
    import fiftyone_samrs as fsr
    from fiftyone_samrs.testing.synthetic import make_dota_tree

    root = tmp_path_factory.mktemp("dota")
    make_dota_tree(str(root), n_images=3, n_objects=5, size=(480, 360), seed=11)
    name = "samrs-browser-dota-" + uuid.uuid4().hex[:6]
    ds = fsr.load_dota(str(root), name=name, persistent=True, progress=False)
    yield ds
    if fo.dataset_exists(name):
        fo.delete_dataset(name)


@pytest.fixture(scope="module")
def hrsc(tmp_path_factory):
    """A generated HRSC2016 folder to import from the App, and the dataset name to use."""
    import fiftyone as fo
    from fiftyone_samrs.testing.synthetic import make_hrsc_tree

    root = tmp_path_factory.mktemp("hrsc")
    make_hrsc_tree(str(root), n_images=3, n_objects=3, size=(480, 320), seed=4)
    name = "samrs-browser-hrsc-" + uuid.uuid4().hex[:6]
    state = {"root": str(root), "name": name, "dataset": None}
    yield state
    if fo.dataset_exists(name):
        fo.delete_dataset(name)


@pytest.fixture(scope="module")
def app_url(chromium_path, dataset, hrsc, tmp_path_factory):
    """The App server with the plugin, in a subprocess; stopped afterwards."""
    plugins_dir = link_plugin(tmp_path_factory.mktemp("plugins"))
    port = _free_port()
    env = dict(os.environ, FIFTYONE_PLUGINS_DIR=str(plugins_dir),
               FIFTYONE_DATABASE_URI=_database_uri(),
               FIFTYONE_DATABASE_NAME=os.environ["FIFTYONE_DATABASE_NAME"],
               FIFTYONE_DATABASE_VALIDATION="false", FIFTYONE_DO_NOT_TRACK="true")
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fiftyone.server.main", "--address", "127.0.0.1",
         "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = "http://127.0.0.1:%d" % port
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail("the App server exited (%s):\n%s" % (proc.returncode,
                                                                  log_path.read_text()[-3000:]))
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the App server did not answer on %s:\n%s"
                            % (url, log_path.read_text()[-3000:]))
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def page(app_url, chromium_path):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, headless=True,
                                    args=CHROMIUM_ARGS)
        try:
            pg = browser.new_page(viewport=VIEWPORT)
            pg.set_default_timeout(30000)
            yield pg
        finally:
            browser.close()


def shot(page, name):
    page.wait_for_timeout(700)  # dialogs fade in
    page.screenshot(path=str(SHOTS / name))


@pytest.fixture(autouse=True)
def screenshot_on_failure(request):
    """Keeps what the browser showed when a test failed (``failed-<test>.png``)."""
    failed_before = request.session.testsfailed
    yield
    if "page" in request.fixturenames and request.session.testsfailed > failed_before:
        try:
            pg = request.getfixturevalue("page")
            pg.screenshot(path=str(SHOTS / ("failed-%s.png" % request.node.name)))
            (SHOTS / ("failed-%s.html" % request.node.name)).write_text(pg.content())
        except Exception:  # noqa: BLE001 - best effort
            pass


def open_operator(page, label):
    """Opens the operator browser with the ` key and picks ``label``."""
    page.keyboard.press("Escape")
    page.keyboard.press("`")
    search = page.get_by_placeholder("Search operations by name...")
    search.wait_for()
    search.fill("SAMRS")
    page.get_by_text(label, exact=True).click()


def _input_after(page, label):
    """The input that follows a form label."""
    return page.locator("xpath=//*[text()='%s']/following::input[1]" % label)


def test_import_and_run_sam_in_the_app(page, app_url, dataset, hrsc, checkpoint):
    import fiftyone as fo

    # the App opens on a dataset, with its label fields in the sidebar
    page.goto("%s/datasets/%s" % (app_url, dataset.name), wait_until="load")
    page.get_by_text("hbb", exact=True).first.wait_for()
    page.get_by_text("obb", exact=True).first.wait_for()
    dismiss = page.get_by_text("Dismiss", exact=True)
    if dismiss.count():
        dismiss.first.click()
    page.wait_for_timeout(1500)  # let the grid draw its thumbnails
    shot(page, "01-app.png")

    # the operator browser lists the plugin's operators
    page.keyboard.press("`")
    search = page.get_by_placeholder("Search operations by name...")
    search.wait_for()
    search.fill("SAMRS")
    for label in OPERATOR_LABELS:
        page.get_by_text(label, exact=True).wait_for()
    shot(page, "02-operator-browser.png")

    # Import: an HRSC2016 folder (it has GT masks); the new dataset opens
    page.get_by_text("SAMRS: Import dataset", exact=True).click()
    page.get_by_text("Dataset folder", exact=True).wait_for()
    page.get_by_text("DOTA (v1.0 / v1.5 / v2.0)", exact=True).click()
    page.get_by_role("option", name="HRSC2016").click()
    page.get_by_text("Import GT masks", exact=True).wait_for()
    _input_after(page, "Dataset folder").fill(hrsc["root"])
    _input_after(page, "Dataset name").fill(hrsc["name"])
    execute = page.get_by_role("button", name="Execute")
    page.get_by_text("Required property", exact=True).first.wait_for(state="hidden")
    shot(page, "03-import-form.png")
    execute.click()
    page.get_by_text("Imported 3 samples", exact=False).first.wait_for(timeout=60000)
    page.get_by_text("gt_masks", exact=True).first.wait_for()
    shot(page, "04-import-done.png")
    page.get_by_role("button", name="Done").click()
    assert page.url.endswith("/datasets/%s" % hrsc["name"])
    ds = fo.load_dataset(hrsc["name"])
    hrsc["dataset"] = ds
    assert len(ds) == 3 and ds.count("gt_masks.detections") == 9

    # Run SAM with the tiny checkpoint, immediately, on the dataset
    open_operator(page, "SAMRS: Run SAM")
    page.get_by_text("Checkpoint file (optional)", exact=True).wait_for()
    _input_after(page, "Checkpoint file (optional)").fill(checkpoint)
    page.get_by_text("Run in the background (delegated)", exact=True).click()
    execute = page.get_by_role("button", name="Execute")
    execute.wait_for()
    shot(page, "05-run-sam-form.png")
    execute.click()
    page.get_by_text("samples segmented", exact=False).first.wait_for(timeout=90000)
    page.get_by_text("sam_seg", exact=True).first.wait_for()
    shot(page, "06-run-sam-done.png")
    page.get_by_role("button", name="Done").click()
    page.get_by_text("sam", exact=True).first.wait_for()
    page.wait_for_timeout(1500)
    shot(page, "07-sam-in-sidebar.png")

    ds.reload()
    assert ds.count("sam.detections") == ds.count("hbb.detections") == 9
    assert len(ds.exists("sam_seg")) == 3


def test_evaluate_qa_panel_and_export_in_the_app(page, app_url, hrsc, tmp_path):
    ds = hrsc["dataset"]
    if ds is None or "sam" not in ds.get_field_schema():
        pytest.skip("needs the masks of test_import_and_run_sam_in_the_app")

    # Evaluate masks: ends by loading the low_iou saved view
    open_operator(page, "SAMRS: Evaluate masks")
    page.get_by_text("Low-IoU threshold", exact=True).wait_for()
    shot(page, "08-evaluate-form.png")
    page.get_by_role("button", name="Execute").click()
    page.get_by_text("mIoU_I", exact=False).first.wait_for(timeout=60000)
    shot(page, "09-evaluate-done.png")
    page.get_by_role("button", name="Done").click()
    # the view bar now holds the low_iou view's stages
    page.locator("input[data-cy='input-view-stage'][value='Match']").first.wait_for()
    page.locator("input[data-cy='input-view-stage'][value='SortBy']").first.wait_for()
    page.get_by_text("eval_iou_i", exact=True).first.wait_for()
    page.wait_for_timeout(1500)
    shot(page, "10-low-iou-view.png")
    assert page.get_by_text("does not exist", exact=False).count() == 0
    ds.reload()
    assert "low_iou" in ds.list_saved_views()

    # the QA panel, from the "+" of the panel tabs
    page.locator("[data-cy='new-panel-btn'], [title='New panel']").first.click()
    page.get_by_text("SAMRS QA", exact=True).first.click()
    page.get_by_text("Open low-IoU samples", exact=True).wait_for()
    page.get_by_text("mIoU_P", exact=False).first.wait_for()
    page.wait_for_timeout(1500)
    shot(page, "11-qa-panel.png")

    # Export the low_iou view (the current view) as a SAMRS tree
    out = tmp_path / "samrs-export"
    open_operator(page, "SAMRS: Export")
    page.get_by_text("Export folder", exact=True).wait_for()
    _input_after(page, "Export folder").fill(str(out))
    page.wait_for_timeout(1000)
    shot(page, "12-export-form.png")
    page.get_by_role("button", name="Execute").click()
    page.get_by_text("Exported (samrs)", exact=False).first.wait_for(timeout=60000)
    shot(page, "13-export-done.png")
    page.get_by_role("button", name="Done").click()
    assert len(list((out / "gray").glob("*.png"))) == len(ds.load_saved_view("low_iou"))
    assert (out / "annotations.json").is_file()


def test_errors_are_shown_in_the_app(page, app_url, hrsc, tmp_path):
    """A run that fails in the App says why (here: the checkpoint file is missing)."""
    if hrsc["dataset"] is None:
        pytest.skip("needs the dataset of test_import_and_run_sam_in_the_app")
    missing = str(tmp_path / "missing_sam_checkpoint.pth")
    open_operator(page, "SAMRS: Run SAM")
    page.get_by_text("Checkpoint file (optional)", exact=True).wait_for()
    _input_after(page, "Checkpoint file (optional)").fill(missing)
    page.get_by_text("Run in the background (delegated)", exact=True).click()
    page.get_by_role("button", name="Execute").click()
    page.get_by_text("The operation failed.", exact=True).wait_for(timeout=60000)
    page.get_by_text(missing, exact=False).first.wait_for()
    shot(page, "14-run-sam-error.png")
    page.get_by_role("button", name="Done").click()
