"""The plugin manifest, its discovery by FiftyOne, ``samrs plugin install|status`` and doctor."""

import os
from pathlib import Path

import pytest
import yaml

import fiftyone_samrs
from fiftyone_samrs.tools import plugin_install
from fiftyone_samrs.tools.cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def plugins_dir(tmp_path, monkeypatch):
    """An empty FiftyOne plugins dir for this test (``fo.config.plugins_dir``)."""
    import fiftyone as fo

    d = tmp_path / "fo-plugins"
    d.mkdir()
    monkeypatch.setattr(fo.config, "plugins_dir", str(d))
    plugin_install._clear_plugin_cache()
    yield d
    plugin_install._clear_plugin_cache()


def _registered(directory):
    """Operator/panel names FiftyOne registers from the plugin in ``directory``."""
    from fiftyone.plugins.context import PluginContext
    from fiftyone.plugins.definitions import PluginDefinition

    definition = PluginDefinition.from_disk(os.path.join(directory, "fiftyone.yml"))
    context = PluginContext(definition)
    context.register_all()
    assert not context.errors, context.errors
    return definition, sorted(op.name for op in context.instances)


def test_manifest_declares_every_operator_and_a_compatible_fiftyone():
    import fiftyone as fo
    from packaging.specifiers import SpecifierSet

    manifest = yaml.safe_load((REPO / "fiftyone.yml").read_text())
    assert manifest["name"] == "@samrs/samrs" == plugin_install.PLUGIN_NAME
    assert manifest["version"] == fiftyone_samrs.__version__
    assert fo.__version__ in SpecifierSet(manifest["fiftyone"]["version"])
    assert (REPO / manifest["py_entry"]).is_file()

    definition, names = _registered(str(REPO))
    declared = sorted(manifest["operators"] + manifest["panels"])
    assert names == declared
    assert set(declared) >= {"import_dataset", "run_sam", "evaluate_masks", "prompt_study",
                             "export_dataset", "samrs_qa"}
    assert definition.has_py and not definition.has_js


def test_download_from_the_repository_finds_exactly_the_root_plugin():
    """What ``fiftyone plugins download <repo URL>`` does after fetching the
    archive: look for plugin manifests (strict) and copy each plugin's folder."""
    from fiftyone.plugins.core import _iter_plugin_metadata_files

    found = list(_iter_plugin_metadata_files(root_dir=str(REPO), strict=True))
    assert found == [str(REPO / "fiftyone.yml")]


def test_plugin_dir_of_a_clone_is_the_repository_root():
    assert plugin_install.plugin_dir() == str(REPO)


def test_wheel_layout_is_found_and_loads(tmp_path):
    """A wheel ships the manifest and plugins/samrs under share/fiftyone-samrs/plugin."""
    prefix = tmp_path / "prefix"
    shared = prefix / plugin_install.SHARE_SUBDIR
    plugin_install.copy_plugin(str(REPO), str(shared))
    assert not list(shared.rglob("__pycache__"))
    assert (shared / "requirements.txt").read_text() == (REPO / "requirements.txt").read_text()

    found = plugin_install.find_plugin_dir([tmp_path / "no-clone-here", shared])
    assert found == str(shared)
    _, names = _registered(found)
    assert "run_sam" in names and "samrs_qa" in names
    assert plugin_install.find_plugin_dir([tmp_path / "no-clone-here"]) is None


def test_install_links_and_fiftyone_discovers_it(plugins_dir, monkeypatch, capsys):
    import fiftyone.operators as foo
    import fiftyone.plugins as fop

    monkeypatch.delenv("FIFTYONE_PLUGINS_DIR", raising=False)
    ok, found, fix = plugin_install.plugin_status()
    assert not ok and "not found" in found and "samrs plugin install" in fix

    target = plugin_install.install_plugin()
    assert target == str(plugins_dir / "@samrs" / "samrs")
    assert os.path.islink(target) and os.path.realpath(target) == str(REPO)
    out = capsys.readouterr().out
    assert "linked" in out and "FIFTYONE_PLUGINS_DIR" in out

    names = [p.name for p in fop.list_plugins()]
    assert names.count("@samrs/samrs") == 1
    uris = {op.uri for op in foo.list_operators()}
    assert "@samrs/samrs/run_sam" in uris and "@samrs/samrs/export_dataset" in uris
    ok, found, fix = plugin_install.plugin_status()
    assert ok, (found, fix)
    assert target in found and "run_sam" in found

    # idempotent for the same link; another folder in the way needs overwrite
    assert plugin_install.install_plugin(quiet=True) == target
    os.unlink(target)
    os.makedirs(target)
    with pytest.raises(FileExistsError, match="overwrite"):
        plugin_install.install_plugin(quiet=True)
    plugin_install.install_plugin(quiet=True, overwrite=True)
    assert os.path.islink(target)

    assert plugin_install.uninstall_plugin(quiet=True)
    assert not os.path.lexists(target)
    assert "@samrs/samrs" not in [p.name for p in fop.list_plugins()]


def test_install_copy_and_stale_copies_are_reported(plugins_dir):
    target = plugin_install.install_plugin(link=False, quiet=True)
    assert not os.path.islink(target)
    assert sorted(os.listdir(target)) == ["fiftyone.yml", "plugins", "requirements.txt"]
    assert os.path.isfile(os.path.join(target, "plugins", "samrs", "__init__.py"))
    ok, found, _ = plugin_install.plugin_status()
    assert ok, found

    # a copy from another release of the package
    manifest = Path(target) / "fiftyone.yml"
    manifest.write_text(manifest.read_text().replace(
        "version: %s" % fiftyone_samrs.__version__, "version: 0.0.1"))
    ok, found, fix = plugin_install.plugin_status()
    assert not ok and "0.0.1" in found and "--overwrite" in fix

    # a copy whose code cannot load
    (Path(target) / "plugins" / "samrs" / "__init__.py").write_text("raise ImportError('boom')\n")
    manifest.write_text(manifest.read_text().replace("version: 0.0.1",
                                                     "version: %s" % fiftyone_samrs.__version__))
    ok, found, fix = plugin_install.plugin_status()
    assert not ok and "fails to load" in found and "boom" in found


def test_cli_plugin_install_status_and_doctor(plugins_dir, capsys):
    from fiftyone_samrs.tools.commands.doctor import _check_plugin

    assert cli_main(["plugin", "status"]) == 1
    assert "not found" in capsys.readouterr().out

    assert cli_main(["plugin", "install"]) == 0
    out = capsys.readouterr().out
    assert "ok:" in out and "@samrs/samrs" in out

    assert cli_main(["plugin", "status"]) == 0
    assert capsys.readouterr().out.startswith("ok")
    name, ok, found, _ = _check_plugin()
    assert name == "plugin" and ok and "@samrs/samrs" in found

    assert cli_main(["plugin", "path"]) == 0
    assert capsys.readouterr().out.strip() == str(REPO)

    assert cli_main(["plugin", "install"]) == 0  # already linked: fine
    capsys.readouterr()
    other = plugins_dir / "elsewhere"
    assert cli_main(["plugin", "install", "--copy", "--plugins-dir", str(other)]) == 0
    assert (other / "@samrs" / "samrs" / "fiftyone.yml").is_file()
    capsys.readouterr()

    assert cli_main(["plugin", "uninstall"]) == 0
    assert not os.path.lexists(plugins_dir / "@samrs" / "samrs")


def test_demo_says_when_the_app_finds_another_copy(plugins_dir, tmp_path, capsys):
    """The demo's plugin step: it links the plugin where the App does not find
    it, and where the App finds another copy (another clone's link) it leaves
    it but says so, with the command that links this one."""
    import shutil

    from fiftyone_samrs.tools.demo import ensure_plugin

    assert ensure_plugin()
    out = capsys.readouterr().out
    assert "linked" in out and "another copy" not in out
    os.unlink(plugin_install.install_target())
    other = tmp_path / "other-clone"
    other.mkdir()
    shutil.copy(REPO / "fiftyone.yml", other / "fiftyone.yml")
    shutil.copytree(REPO / "plugins", other / "plugins")
    os.symlink(other, plugin_install.install_target(), target_is_directory=True)
    plugin_install._clear_plugin_cache()
    assert ensure_plugin()
    out = capsys.readouterr().out
    assert "another copy of the plugin (%s)" % os.path.realpath(other) in out
    assert "samrs plugin install --overwrite" in out


# --------------------------------------------------------------------------
# issue 25: installed the way FiftyOne plugins install


def _repo_zip(tmp_path) -> Path:
    """The repository as a zip archive of its files, as GitHub serves it
    (one top folder); untracked files included, ignored ones not."""
    import subprocess
    import zipfile

    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                           capture_output=True, check=True).stdout.decode().split("\0")
    archive = tmp_path / "fiftyone-samrs-main.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for name in filter(None, files):
            if (REPO / name).is_file():
                z.write(REPO / name, "fiftyone-samrs-main/" + name)
    return archive


def _serve(folder):
    """A loopback HTTP server of ``folder`` (no network); returns (server, base URL)."""
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, "http://127.0.0.1:%d" % server.server_address[1]


def test_fiftyone_plugins_download_of_a_zip_then_requirements_install(plugins_dir, tmp_path):
    """The App user's path, offline: ``fiftyone plugins download <zip URL>``
    (a local zip of this repository served on loopback) gives a plugin
    FiftyOne discovers and loads; ``fiftyone plugins requirements @samrs/samrs
    --install`` installs the package the plugin needs (here from a wheel
    built from the repository, into a target folder)."""
    import subprocess
    import sys

    archive = _repo_zip(tmp_path)
    server, url = _serve(archive.parent)
    env = dict(os.environ, FIFTYONE_PLUGINS_DIR=str(plugins_dir))
    fiftyone = [sys.executable, "-c", "import sys; from fiftyone.core.cli import main; "
                "sys.argv[0] = 'fiftyone'; main()"]
    try:
        done = subprocess.run(fiftyone + ["plugins", "download", url + "/" + archive.name],
                              env=env, capture_output=True, text=True, timeout=300)
    finally:
        server.shutdown()
    assert done.returncode == 0, done.stderr[-2000:]
    installed = [p for p in plugins_dir.rglob("fiftyone.yml")]
    assert len(installed) == 1
    definition, names = _registered(str(installed[0].parent))
    assert definition.name == "@samrs/samrs" and "run_sam" in names

    shown = subprocess.run(fiftyone + ["plugins", "requirements", "@samrs/samrs", "--print"],
                           env=env, capture_output=True, text=True, timeout=300)
    assert "fiftyone-samrs==%s" % fiftyone_samrs.__version__ in shown.stdout, shown.stdout

    wheels, target = tmp_path / "wheels", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheels), str(REPO)], check=True, capture_output=True,
                   timeout=600)
    pip_env = dict(env, PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheels), PIP_TARGET=str(target),
                   PIP_NO_DEPS="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    done = subprocess.run(fiftyone + ["plugins", "requirements", "@samrs/samrs", "--install"],
                          env=pip_env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    dist = list(target.glob("fiftyone_samrs-*.dist-info"))
    assert [d.name for d in dist] == ["fiftyone_samrs-%s.dist-info" % fiftyone_samrs.__version__]
    assert (target / "fiftyone_samrs" / "__init__.py").is_file()


def test_requirements_pin_the_manifests_version():
    manifest = yaml.safe_load((REPO / "fiftyone.yml").read_text())
    lines = [x.strip() for x in (REPO / "requirements.txt").read_text().splitlines()
             if x.strip() and not x.startswith("#")]
    assert lines == ["fiftyone-samrs==%s" % manifest["version"]]


def test_operators_say_what_to_run_without_the_package(monkeypatch):
    """At load time the plugin checks the package: missing, or of another
    version than the manifest, FiftyOne gets an error naming the command."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(
        "samrs_plugin_check", REPO / "plugins" / "samrs" / "__init__.py",
        submodule_search_locations=[str(REPO / "plugins" / "samrs")])
    entry = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(entry)
    assert entry.package_problem(fiftyone_samrs.__version__) is None
    monkeypatch.setattr(fiftyone_samrs, "__version__", "0.0.1")
    problem = entry.package_problem(entry.manifest_version())
    assert "needs fiftyone-samrs %s, this Python has 0.0.1" % entry.manifest_version() in problem
    assert "fiftyone plugins requirements @samrs/samrs --install" in problem
    with pytest.raises(ImportError, match="plugins requirements"):
        entry.register(object())
    monkeypatch.setitem(sys.modules, "fiftyone_samrs", None)
    assert "not importable" in entry.package_problem("0.2.0")
