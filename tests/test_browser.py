"""End to end in a real browser: the FiftyOne App with the @samrs/samrs plugin,
driven by Playwright in Debian's headless Chromium.

The App server runs in a subprocess on a free localhost port, on the same
database as this test (``FIFTYONE_DATABASE_URI`` of this process's mongod, the
test's ``FIFTYONE_DATABASE_NAME``) and with ``FIFTYONE_PLUGINS_DIR`` holding a
link to the plugin, with FiftyOne's default settings (no orchestrator). The
App opens on a generated DOTA dataset; everything after that happens in the
App, as a user would do it: find the plugin's operators, import a generated
HRSC2016 folder (which opens the new dataset), run "Run SAM" with the tiny
random SAM as its form opens (Execute, nothing to tick) and see the new
fields and the masks, evaluate the masks (which loads the ``low_iou`` view),
follow an evaluation from the QA panel, export a SAMRS tree, and see a
failing run explain itself. Then: FAIR1M's TIFF images shown through their
previews, the ``samrs-qa`` workspace (``samrs app``) opening with the panel,
and, on a second App server with ``FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS=true``,
Run SAM scheduled from the App and run by a ``fiftyone delegated launch``
worker.

Every wait is on a state (a text, an element, a loaded canvas, the
database); the timeouts are generous ceilings for a loaded machine, never
the condition. ``window.IS_PLAYWRIGHT`` keeps the App's analytics banner and
Enterprise tooltip away, as in FiftyOne's own browser tests.

Screenshots go to ``test-artifacts/screenshots/`` (``scripts/update_screenshots.sh``
copies them to ``docs/img/`` for the README). Playwright never downloads a
browser here: without a ``chromium`` executable the test is skipped, saying so.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
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

#: the ceiling of any one wait (ms): a machine shared with other jobs can be
#: slow; every wait ends as soon as its state is reached
SAFETY_MS = 240_000
#: the ceiling for a server or worker to come up, and for a run to finish (s)
SAFETY_S = 300

#: the App's hooks for browser tests: no analytics banner, no Enterprise tooltip
INIT_SCRIPT = "window.IS_PLAYWRIGHT = true;"

#: loaded thumbnails and error tiles of the grid, and the modal's canvas
GRID_LOADED = "[data-cy=looker] canvas[canvas-loaded=true]"
GRID_ERRORS = "[data-cy=looker-error-info]"
MODAL_LOADED = "[data-cy=modal-looker-container] canvas[canvas-loaded=true]"

#: no animation or transition running (spinners, which never end, aside)
QUIET_JS = """() => document.getAnimations().every(a => a.playState !== 'running'
    || (a.effect && a.effect.getComputedTiming().iterations === Infinity))"""
TWO_FRAMES_JS = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"


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


def _env(plugins_dir, **extra):
    return dict(os.environ, FIFTYONE_PLUGINS_DIR=str(plugins_dir),
                FIFTYONE_DATABASE_URI=_database_uri(),
                FIFTYONE_DATABASE_NAME=os.environ["FIFTYONE_DATABASE_NAME"],
                FIFTYONE_DATABASE_VALIDATION="false", FIFTYONE_DO_NOT_TRACK="true", **extra)


def _stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _tail(path, n=3000):
    try:
        return Path(path).read_text()[-n:]
    except OSError:
        return ""


def start_app_server(tmp_path_factory, **extra_env):
    """Starts the App server in a subprocess; returns ``(url, proc, log_path)``
    once it answers."""
    plugins_dir = link_plugin(tmp_path_factory.mktemp("plugins"))
    port = _free_port()
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fiftyone.server.main", "--address", "127.0.0.1",
         "--port", str(port)],
        env=_env(plugins_dir, **extra_env), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    log.close()
    url = "http://127.0.0.1:%d" % port
    deadline = time.monotonic() + SAFETY_S
    while True:
        if proc.poll() is not None:
            pytest.fail("the App server exited (%s):\n%s" % (proc.returncode, _tail(log_path)))
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return url, proc, log_path, plugins_dir
        except OSError:
            pass
        if time.monotonic() > deadline:
            _stop(proc)
            pytest.fail("the App server did not answer on %s:\n%s" % (url, _tail(log_path)))
        time.sleep(0.25)


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
    ds = fsr.load_dota(str(root), name=name, persistent=True, progress=False, version="1.0")
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
    """The App server with the plugin and FiftyOne's defaults; stopped afterwards."""
    url, proc, _, _ = start_app_server(tmp_path_factory)
    try:
        yield url
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def page(app_url, chromium_path):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, headless=True,
                                    args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=VIEWPORT)
            context.add_init_script(INIT_SCRIPT)
            context.set_default_timeout(SAFETY_MS)
            yield context.new_page()
        finally:
            browser.close()


def settle(page):
    """Waits until no animation runs (dialogs have faded in), then two frames."""
    page.wait_for_function(QUIET_JS)
    page.evaluate(TWO_FRAMES_JS)


def shot(page, name):
    settle(page)
    page.screenshot(path=str(SHOTS / name))


def wait_grid(page, n):
    """Waits until the grid has drawn ``n`` thumbnails (or error tiles), and
    still has once things have settled (a grid laid out again, e.g. when a
    panel opens beside it, draws its thumbnails again); returns the number
    of error tiles."""
    for _ in range(2):
        page.wait_for_function(
            "([ok, bad, n]) => document.querySelectorAll(ok).length"
            " + document.querySelectorAll(bad).length >= n",
            arg=[GRID_LOADED, GRID_ERRORS, n])
        settle(page)
    return page.locator(GRID_ERRORS).count()


def open_modal(page):
    """Opens the first sample in the modal and waits until it is drawn."""
    page.locator("[data-cy=looker]").first.click()
    page.locator(MODAL_LOADED).first.wait_for()


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
        except Exception:
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


def fill(page, label, value):
    """Types ``value`` into the form input after ``label`` and waits until the
    App has sent the new parameters to the server (the dynamic form's
    ``resolve-type`` round trip), so that a click that follows executes with
    them."""
    with page.expect_response(lambda r: "/operators/resolve-type" in r.url):
        _input_after(page, label).fill(value)


def test_import_and_run_sam_in_the_app(page, app_url, dataset, hrsc, checkpoint):
    import fiftyone as fo

    # the App opens on a dataset, with its label fields in the sidebar
    page.goto("%s/datasets/%s" % (app_url, dataset.name), wait_until="load")
    page.get_by_text("hbb", exact=True).first.wait_for()
    page.get_by_text("obb", exact=True).first.wait_for()
    assert wait_grid(page, len(dataset)) == 0
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
    fill(page, "Dataset folder", hrsc["root"])
    fill(page, "Dataset name", hrsc["name"])
    execute = page.get_by_role("button", name="Execute", exact=True)
    page.get_by_text("Required property", exact=True).first.wait_for(state="hidden")
    shot(page, "03-import-form.png")
    execute.click()
    page.get_by_text("Imported 3 samples", exact=False).first.wait_for()
    page.get_by_text("gt_masks", exact=True).first.wait_for()
    shot(page, "04-import-done.png")
    page.get_by_role("button", name="Done").click()
    page.wait_for_url("**/datasets/%s" % hrsc["name"])
    ds = fo.load_dataset(hrsc["name"])
    hrsc["dataset"] = ds
    assert len(ds) == 3 and ds.count("gt_masks.detections") == 9

    # Run SAM as its form opens: the notice on how it runs comes first, and
    # Execute runs it (no checkbox to find; no "Background compute" screen)
    open_operator(page, "SAMRS: Run SAM")
    page.get_by_text("Checkpoint file (optional)", exact=True).wait_for()
    page.get_by_text(re.compile("Execute runs 3 samples now")).wait_for()
    assert page.get_by_text("Run in the background", exact=False).count() == 0
    assert page.get_by_text("Background compute is not yet configured").count() == 0
    fill(page, "Checkpoint file (optional)", checkpoint)
    execute = page.get_by_role("button", name="Execute", exact=True)
    execute.wait_for()
    shot(page, "05-run-sam-form.png")
    execute.click()
    page.get_by_text("samples segmented", exact=False).first.wait_for()
    page.get_by_text("sam_seg", exact=True).first.wait_for()
    # the summary's lines stay apart (a list, not one paragraph)
    page.locator("li", has_text="backend sam, prompt auto").first.wait_for()
    shot(page, "06-run-sam-done.png")
    page.get_by_role("button", name="Done").click()
    page.get_by_text("sam", exact=True).first.wait_for()
    assert wait_grid(page, len(ds)) == 0
    shot(page, "07-sam-in-sidebar.png")

    ds.reload()
    assert ds.count("sam.detections") == ds.count("hbb.detections") == 9
    assert len(ds.exists("sam_seg")) == 3

    # a sample: the masks, with the rotated boxes drawn as outlines over them
    open_modal(page)
    shot(page, "08-sample-modal.png")
    page.keyboard.press("Escape")
    page.locator(MODAL_LOADED).first.wait_for(state="detached")


def _eval_low_iou_of(ds, key, n):
    """An SDK evaluation ``key`` whose low-IoU view holds exactly ``n`` samples."""
    import fiftyone_samrs as fsr

    fsr.evaluate(ds, pred_field="sam", gt_field="gt_masks", eval_key=key, progress=False)
    ious = sorted(v for v in ds.values("%s_iou_i" % key) if v is not None)
    if n == 0:
        threshold = ious[0]  # nothing is below the lowest
    elif n < len(ious):
        threshold = (ious[n - 1] + ious[n]) / 2
    else:
        threshold = ious[-1] + 0.01
    fsr.save_qa_views(ds, eval_key=key, low_iou=threshold)
    assert len(ds.load_saved_view("low_iou_%s" % key)) == n
    return threshold


def test_evaluate_qa_panel_and_export_in_the_app(page, app_url, hrsc, tmp_path):
    ds = hrsc["dataset"]
    if ds is None or "sam" not in ds.get_field_schema():
        pytest.skip("needs the masks of test_import_and_run_sam_in_the_app")

    # Evaluate masks: ends by loading the low_iou view
    open_operator(page, "SAMRS: Evaluate masks")
    page.get_by_text("Low-IoU threshold", exact=True).wait_for()
    shot(page, "09-evaluate-form.png")
    page.get_by_role("button", name="Execute", exact=True).click()
    page.get_by_text("mIoU_I", exact=False).first.wait_for()
    shot(page, "10-evaluate-done.png")
    page.get_by_role("button", name="Done").click()
    ds.reload()
    n_low = len(ds.load_saved_view("low_iou_eval"))
    assert n_low > 0, "the tiny random SAM should leave samples below IoU 0.5"
    # the view bar now holds the low_iou view's stages
    page.locator("input[data-cy='input-view-stage'][value='Match']").first.wait_for()
    page.locator("input[data-cy='input-view-stage'][value='SortBy']").first.wait_for()
    page.get_by_text("eval_iou_i", exact=True).first.wait_for()
    assert wait_grid(page, n_low) == 0
    shot(page, "11-low-iou-view.png")
    assert page.get_by_text("does not exist", exact=False).count() == 0

    # a second evaluation (SDK) whose low-IoU view holds one sample: the QA
    # panel opens on it, the newest, and its button opens that one sample
    _eval_low_iou_of(ds, "eval_one", 1)
    page.locator("[data-cy='new-panel-btn'], [title='New panel']").first.click()
    page.get_by_text("SAMRS QA", exact=True).first.click()
    page.get_by_role("button", name="Open low-IoU samples (1)").wait_for()
    page.get_by_text("mIoU_P", exact=False).first.wait_for()
    settle(page)
    page.get_by_role("button", name="Open low-IoU samples (1)").click()
    page.get_by_text("eval_one_iou_i", exact=True).first.wait_for()  # the view bar's stages
    assert wait_grid(page, 1) == 0
    # the panel's evaluation menu: back to the App's evaluation, same panel
    page.get_by_role("combobox").filter(has_text="eval_one").click()
    page.get_by_role("option", name="eval", exact=True).click()
    page.get_by_role("button", name="Open low-IoU samples (%d)" % n_low).wait_for()
    shot(page, "12-qa-panel.png")
    # an evaluation with nothing below its threshold: the panel says why
    _eval_low_iou_of(ds, "eval_none", 0)
    page.get_by_role("button", name="Refresh").click()
    page.get_by_role("combobox").filter(has_text=re.compile(r"^eval$")).click()
    page.get_by_role("option", name="eval_none", exact=True).click()
    page.get_by_text(re.compile("no sample has eval_none_iou_i below")).wait_for()
    assert page.get_by_role("button", name="Open low-IoU samples (0)").is_disabled()

    # Export the current view as a SAMRS tree
    out = tmp_path / "samrs-export"
    open_operator(page, "SAMRS: Export")
    page.get_by_text("Export folder", exact=True).wait_for()
    fill(page, "Export folder", str(out))
    page.get_by_role("button", name="Execute", exact=True).wait_for()
    shot(page, "13-export-form.png")
    page.get_by_role("button", name="Execute", exact=True).click()
    page.get_by_text("Exported (samrs)", exact=False).first.wait_for()
    shot(page, "14-export-done.png")
    page.get_by_role("button", name="Done").click()
    assert len(list((out / "gray").glob("*.png"))) == 1  # the eval_one view: one sample
    assert (out / "annotations.json").is_file()
    # the form's defaults give the training-ready files: card, rotated boxes, split lists
    assert (out / "README.md").is_file() and len(list((out / "rbbtxts").glob("*.txt"))) == 1
    assert (out / "train.txt").is_file() and (out / "valid.txt").is_file()


def test_errors_are_shown_in_the_app(page, app_url, hrsc, tmp_path):
    """A run that fails in the App says why (here: the checkpoint file is missing)."""
    if hrsc["dataset"] is None:
        pytest.skip("needs the dataset of test_import_and_run_sam_in_the_app")
    missing = str(tmp_path / "missing_sam_checkpoint.pth")
    open_operator(page, "SAMRS: Run SAM")
    page.get_by_text("Checkpoint file (optional)", exact=True).wait_for()
    fill(page, "Checkpoint file (optional)", missing)
    page.get_by_role("button", name="Execute", exact=True).click()
    page.get_by_text("The operation failed.", exact=True).wait_for()
    page.get_by_text(missing, exact=False).first.wait_for()
    shot(page, "15-run-sam-error.png")
    page.get_by_role("button", name="Done").click()


def test_tiff_previews_and_the_qa_workspace(page, app_url, hrsc, tmp_path):
    """FAIR1M's TIFF images show (through their JPEG previews, while
    ``filepath`` stays the TIFF), and ``?workspace=samrs-qa`` (what
    ``samrs app`` opens) brings the QA panel up beside the samples."""
    import fiftyone as fo

    import fiftyone_samrs as fsr
    from fiftyone_samrs.testing.synthetic import make_fair1m_tree
    from fiftyone_samrs.tools.app import QA_WORKSPACE, save_qa_workspace

    make_fair1m_tree(str(tmp_path / "fair1m"), n_images=2, n_objects=3, size=(320, 320))
    name = "samrs-browser-fair1m-" + uuid.uuid4().hex[:6]
    ds = fsr.load_fair1m(str(tmp_path / "fair1m"), name=name, progress=False)
    try:
        assert all(p.endswith(".tif") for p in ds.values("filepath"))
        assert all(p.endswith(".jpg") for p in ds.values("preview_path"))
        page.goto("%s/datasets/%s" % (app_url, name), wait_until="load")
        page.get_by_text("hbb", exact=True).first.wait_for()
        assert wait_grid(page, 2) == 0  # no red error tile
        shot(page, "16-fair1m-tiff-previews.png")
    finally:
        fo.delete_dataset(name)

    ds = hrsc["dataset"]
    if ds is None or "eval" not in ds.list_evaluations():
        pytest.skip("needs the evaluation of test_evaluate_qa_panel_and_export_in_the_app")
    save_qa_workspace(ds)
    page.goto("%s/datasets/%s?workspace=%s" % (app_url, ds.name, QA_WORKSPACE),
              wait_until="load")
    page.get_by_role("button", name=re.compile(r"Open low-IoU samples \(\d+\)")).wait_for()
    assert wait_grid(page, len(ds)) == 0
    shot(page, "17-samrs-app-workspace.png")


def click_label(page, sample, label_id, field="sam"):
    """Clicks, in the open modal, a pixel of a label's mask (the one nearest
    its centre), which selects the label as a reviewer's click does."""
    det = [d for d in sample[field].detections if d.id == label_id][0]
    width, height = sample.metadata.width, sample.metadata.height
    box = page.locator(MODAL_LOADED).first.bounding_box()
    scale = min(box["width"] / width, box["height"] / height)  # the image fits, centred
    left = box["x"] + (box["width"] - width * scale) / 2
    top = box["y"] + (box["height"] - height * scale) / 2
    pixels = np.argwhere(det.mask)
    py, px = pixels[np.argmin(((pixels - pixels.mean(0)) ** 2).sum(1))]
    x, y = det.bounding_box[0] * width + px + 0.5, det.bounding_box[1] * height + py + 0.5
    page.mouse.click(left + x * scale, top + y * scale)


def run_operator(page, label, wait_text, done_text, shot_name):
    """Opens an operator from the modal (its selection kept), waits for its
    form to say ``wait_text``, executes it as it comes and waits for
    ``done_text`` in its output."""
    page.keyboard.press("`")
    search = page.get_by_placeholder("Search operations by name...")
    search.wait_for()
    search.fill("SAMRS")
    page.get_by_text(label, exact=True).click()
    page.get_by_text(wait_text, exact=False).first.wait_for()
    shot(page, shot_name)
    page.get_by_role("button", name="Execute", exact=True).click()
    page.get_by_text(done_text, exact=False).first.wait_for()


def test_review_loop_in_the_app(page, app_url, hrsc, tmp_path):
    """A reviewer's loop: the QA panel opens the low-IoU samples and the next
    one to review, a click selects a flagged mask, Re-segment (as it comes)
    computes its alternatives, Review decision (as it comes) takes the best;
    the label, its semantic PNG, the panel's counts and an export follow."""
    import json

    import fiftyone_samrs as fsr
    from fiftyone_samrs.core.painting import read_label_png
    from fiftyone_samrs.evaluating.review import repaint
    from fiftyone_samrs.segmenting.runs import get_segment_run
    from fiftyone_samrs.tools.app import QA_WORKSPACE

    ds = hrsc["dataset"]
    if ds is None or "eval" not in ds.list_evaluations():
        pytest.skip("needs the evaluation of test_evaluate_qa_panel_and_export_in_the_app")
    todo = fsr.review_progress(ds, "eval")
    assert todo.to_review and todo.next_sample, todo
    page.goto("%s/datasets/%s?workspace=%s" % (app_url, ds.name, QA_WORKSPACE),
              wait_until="load")
    page.get_by_role("combobox").filter(has_text="eval_none").click()  # the newest
    page.get_by_role("option", name="eval", exact=True).click()
    page.get_by_text(re.compile(r"Review of eval: %d flagged masks" % todo.flagged)).wait_for()
    page.get_by_role("button", name="Open low-IoU samples", exact=False).click()
    assert wait_grid(page, todo.samples) == 0
    page.get_by_role("button", name="Next to review (%d)" % todo.to_review).click()
    page.locator(MODAL_LOADED).first.wait_for()
    page.get_by_text(todo.next_sample, exact=True).first.wait_for()  # the modal's sample id
    settle(page)

    sample = ds[todo.next_sample]
    png = sample[get_segment_run(ds, "sam")["seg_field"]].mask_path
    before = read_label_png(png)
    click_label(page, sample, todo.next_labels[0])
    run_operator(page, "SAMRS: Re-segment labels", "1 selected label of", "alternatives for 1 "
                 "labels", "19-resegment-form.png")
    shot(page, "20-resegment-done.png")
    page.get_by_role("button", name="Done").click()
    ds.reload()
    alts = ds[todo.next_sample].sam_alternatives.detections
    (label_id,) = {a.of for a in alts}  # the clicked label, and only it
    assert label_id in todo.next_labels
    run_operator(page, "SAMRS: Review decision", "1 selected label of", "replace: 1 label",
                 "21-review-decision-form.png")
    page.get_by_role("button", name="Done").click()

    # the label took its best alternative, and the semantic PNG followed
    ds.reload()
    sample = ds[todo.next_sample]
    got = [d for d in sample.sam.detections if d.id == label_id][0]
    best = max((a for a in alts if a.of == label_id and a.confidence is not None),
               key=lambda a: a.confidence)
    assert got.review == "replaced" and got.review_choice == best.alternative
    assert (got.mask == best.mask).all()
    after = read_label_png(png)
    assert (after != before).any()
    repaint(sample, "sam")  # what the run paints: the same pixels
    np.testing.assert_array_equal(read_label_png(png), after)

    # the panel counts the decision
    page.keyboard.press("Escape")
    page.locator(MODAL_LOADED).first.wait_for(state="detached")
    page.get_by_role("button", name="Refresh").click()
    page.get_by_text(re.compile(r"1 reviewed \(1 replaced\)")).wait_for()
    page.get_by_role("button", name="Next to review (%d)" % (todo.to_review - 1)).wait_for()
    shot(page, "22-review-progress.png")

    # an export of the low-IoU view carries the decision
    out = tmp_path / "reviewed"
    open_operator(page, "SAMRS: Export")
    page.get_by_text("Export folder", exact=True).wait_for()
    fill(page, "Export folder", str(out))
    page.get_by_role("button", name="Execute", exact=True).click()
    page.get_by_text("Exported (samrs)", exact=False).first.wait_for()
    page.get_by_role("button", name="Done").click()
    assert "Review decisions on the objects: replaced 1" in (out / "README.md").read_text()
    anns = json.loads((out / "annotations.json").read_text())["annotations"]
    assert [a.get("review") for a in anns].count("replaced") == 1


# --------------------------------------------------------------------------
# delegation end to end: Schedule in the App, a `fiftyone delegated launch` worker


@pytest.fixture(scope="module")
def scheduling_app(chromium_path, tmp_path_factory):
    """A second App server, with FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS=true (the
    App then shows Schedule), and a worker on the same database and plugins
    dir; both stopped afterwards."""
    url, server, _, plugins_dir = start_app_server(
        tmp_path_factory, FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS="true")
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    cli = os.path.join(os.path.dirname(sys.executable), "fiftyone")
    command = [cli] if os.path.exists(cli) else [sys.executable, "-m", "fiftyone.core.cli"]
    with open(log_path, "w") as log:
        worker = subprocess.Popen(command + ["delegated", "launch"], env=_env(plugins_dir),
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield {"url": url, "worker": worker, "log": log_path}
    finally:
        _stop(worker)
        _stop(server)


def test_run_sam_scheduled_in_the_app_runs_on_a_worker(page, scheduling_app, dataset,
                                                      checkpoint):
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionRunState

    url = scheduling_app["url"]
    page.goto("%s/datasets/%s" % (url, dataset.name), wait_until="load")
    page.get_by_text("hbb", exact=True).first.wait_for()
    open_operator(page, "SAMRS: Run SAM")
    page.get_by_text("Checkpoint file (optional)", exact=True).wait_for()
    page.get_by_text(re.compile("Schedule \\(the default here\\) queues it")).wait_for()
    fill(page, "Checkpoint file (optional)", checkpoint)
    fill(page, "Instance mask field", "sam_worker")
    schedule = page.get_by_role("button", name="Schedule", exact=True)
    schedule.wait_for()
    shot(page, "18-run-sam-schedule.png")
    schedule.click()

    svc = DelegatedOperationService()
    deadline = time.monotonic() + SAFETY_S  # safety only: the loop waits on the run's state
    op = None
    while time.monotonic() < deadline:
        ops = [o for o in svc.list_operations(dataset_name=dataset.name)
               if o.operator == "@samrs/samrs/run_sam"]
        op = ops[-1] if ops else None
        if op is not None and op.run_state in (ExecutionRunState.COMPLETED,
                                               ExecutionRunState.FAILED):
            break
        assert scheduling_app["worker"].poll() is None, (
            "the worker exited:\n" + _tail(scheduling_app["log"]))
        time.sleep(0.5)
    assert op is not None, "nothing was scheduled"
    assert op.run_state == ExecutionRunState.COMPLETED, (op.result, _tail(scheduling_app["log"]))
    assert "3 samples segmented" in op.result.result["summary"], op.result.result
    params = op.context.request_params.get("params", {})
    assert params.get("label_field") == "sam_worker", params
    dataset.reload()  # the worker wrote the new field
    assert dataset.count("sam_worker.detections") == dataset.count("hbb.detections")
