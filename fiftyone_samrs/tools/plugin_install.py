"""Finding, installing and checking the FiftyOne plugin ``@samrs/samrs``.

The plugin is the directory holding ``fiftyone.yml`` (the repository root);
its operators live in ``plugins/samrs/`` and call this package. FiftyOne
discovers plugins by walking its plugins dir (``fo.config.plugins_dir``, set by
``FIFTYONE_PLUGINS_DIR``, default ``~/fiftyone/__plugins__``) for
``fiftyone.yml`` files, following symlinks.

Where the plugin files are:

- a clone or an editable install (``pip install -e .``): the repository root,
  next to the ``fiftyone_samrs`` package;
- a wheel install: the wheel ships ``fiftyone.yml`` and ``plugins/samrs/*.py``
  as data files under ``<prefix>/share/fiftyone-samrs/plugin/`` (same layout,
  so the same manifest works), see :data:`SHARE_SUBDIR`.

:func:`install_plugin` links (or copies) that directory into the plugins dir
as ``<plugins_dir>/@samrs/samrs``, the folder FiftyOne's own
``fiftyone plugins download`` would use.
"""

from __future__ import annotations

import os
import shutil
import site
import sys
import sysconfig
from pathlib import Path
from typing import Iterable, List, Optional, Tuple, Union

#: the plugin's name in ``fiftyone.yml``
PLUGIN_NAME = "@samrs/samrs"

#: manifest file name
MANIFEST = "fiftyone.yml"

#: the Python entry point, relative to the plugin directory
PY_ENTRY = os.path.join("plugins", "samrs", "__init__.py")

#: where a wheel install puts the plugin files, relative to a data prefix
SHARE_SUBDIR = os.path.join("share", "fiftyone-samrs", "plugin")


def _manifest_name(directory: Path) -> Optional[str]:
    path = directory / MANIFEST
    if not path.is_file():
        return None
    import yaml

    try:
        with open(path) as f:
            return (yaml.safe_load(f) or {}).get("name")
    except (OSError, yaml.YAMLError):
        return None


def _is_plugin_dir(directory: Path) -> bool:
    return _manifest_name(directory) == PLUGIN_NAME and (directory / PY_ENTRY).is_file()


def _candidate_dirs() -> List[Path]:
    package_dir = Path(__file__).resolve().parents[1]  # fiftyone_samrs/
    candidates = [package_dir.parent]  # clone / editable install
    prefixes = [sysconfig.get_path("data"), sys.prefix, getattr(site, "USER_BASE", None)]
    for prefix in prefixes:
        if prefix:
            candidates.append(Path(prefix) / SHARE_SUBDIR)
    return candidates


def find_plugin_dir(candidates: Iterable[Union[str, Path]]) -> Optional[str]:
    """The first of ``candidates`` that holds the plugin (its manifest and entry), or None."""
    for directory in candidates:
        if _is_plugin_dir(Path(directory)):
            return str(Path(directory))
    return None


def plugin_dir() -> str:
    """The directory of the plugin that belongs to this installation.

    Returns:
        the absolute path of the directory holding ``fiftyone.yml``

    Raises:
        FileNotFoundError: if neither the repository root nor the wheel's data
            directory holds the plugin
    """
    candidates = _candidate_dirs()
    found = find_plugin_dir(candidates)
    if found:
        return found
    raise FileNotFoundError(
        "the %s plugin files (%s + %s) were not found in any of: %s. Reinstall "
        "fiftyone-samrs, or download the plugin with `fiftyone plugins download "
        "<repository URL>`" % (PLUGIN_NAME, MANIFEST, PY_ENTRY,
                               ", ".join(str(c) for c in candidates))
    )


def _plugins_dir(plugins_dir: Optional[str] = None) -> str:
    if plugins_dir:
        return os.path.abspath(os.path.expanduser(plugins_dir))
    import fiftyone as fo

    return os.path.abspath(os.path.expanduser(fo.config.plugins_dir))


def install_target(plugins_dir: Optional[str] = None) -> str:
    """Where :func:`install_plugin` puts the plugin: ``<plugins_dir>/@samrs/samrs``."""
    return os.path.join(_plugins_dir(plugins_dir), *PLUGIN_NAME.split("/"))


def copy_plugin(src: str, dst: str) -> None:
    """Copies the plugin files (manifest, its ``requirements.txt`` and
    ``plugins/samrs``) of ``src`` into a new ``dst``."""
    os.makedirs(dst)
    for name in (MANIFEST, "requirements.txt"):
        if os.path.isfile(os.path.join(src, name)):
            shutil.copy2(os.path.join(src, name), os.path.join(dst, name))
    shutil.copytree(
        os.path.join(src, os.path.dirname(PY_ENTRY)),
        os.path.join(dst, os.path.dirname(PY_ENTRY)),
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )


def install_plugin(link: bool = True, plugins_dir: Optional[str] = None,
                   overwrite: bool = False, quiet: bool = False) -> str:
    """Makes FiftyOne find the plugin: links (or copies) it into the plugins dir.

    Args:
        link: symlink the plugin directory (edits in a clone are live); False
            copies ``fiftyone.yml`` and ``plugins/samrs/`` instead
        plugins_dir: the plugins dir to install into; default
            ``fo.config.plugins_dir`` (``FIFTYONE_PLUGINS_DIR``), created if
            missing
        overwrite: replace an existing ``<plugins_dir>/@samrs/samrs``
        quiet: print nothing

    Returns:
        the installed path ``<plugins_dir>/@samrs/samrs``

    Raises:
        FileExistsError: if the target exists, is not already this plugin and
            ``overwrite`` is False
        FileNotFoundError: if the plugin files cannot be found (see
            :func:`plugin_dir`)
    """
    src = plugin_dir()
    target = install_target(plugins_dir)
    say = (lambda *a: None) if quiet else print

    if os.path.lexists(target):
        same = os.path.islink(target) and os.path.realpath(target) == os.path.realpath(src)
        if same and link:
            say("[samrs] %s is already linked: %s -> %s" % (PLUGIN_NAME, target, src))
            return target
        if not overwrite:
            raise FileExistsError(
                "%s already exists (%s); pass overwrite=True (CLI: --overwrite) to "
                "replace it" % (target, "a link to %s" % os.readlink(target)
                                if os.path.islink(target) else "a folder")
            )
        if os.path.islink(target) or os.path.isfile(target):
            os.unlink(target)
        else:
            shutil.rmtree(target)

    os.makedirs(os.path.dirname(target), exist_ok=True)
    if link:
        os.symlink(src, target, target_is_directory=True)
        say("[samrs] linked %s -> %s" % (target, src))
    else:
        copy_plugin(src, target)
        say("[samrs] copied %s to %s" % (PLUGIN_NAME, target))

    if not os.environ.get("FIFTYONE_PLUGINS_DIR") and not plugins_dir:
        say("[samrs] FIFTYONE_PLUGINS_DIR is not set: FiftyOne uses its default plugins dir "
            "%s. If the App runs with another configuration, set\n"
            "        export FIFTYONE_PLUGINS_DIR=%s" % (_plugins_dir(), _plugins_dir()))
    _clear_plugin_cache()
    return target


def _clear_plugin_cache() -> None:
    """Makes a running process see the new plugin now."""
    from fiftyone_samrs.fiftyone_io import clear_plugin_cache

    clear_plugin_cache()


def uninstall_plugin(plugins_dir: Optional[str] = None, quiet: bool = False) -> bool:
    """Removes ``<plugins_dir>/@samrs/samrs`` (the link, or the copied folder).

    Returns:
        whether something was removed
    """
    target = install_target(plugins_dir)
    if not os.path.lexists(target):
        return False
    if os.path.islink(target):
        os.unlink(target)
    else:
        shutil.rmtree(target)
    if not quiet:
        print("[samrs] removed %s" % target)
    _clear_plugin_cache()
    return True


def plugin_status(plugins_dir: Optional[str] = None) -> Tuple[bool, str, str]:
    """Whether FiftyOne discovers ``@samrs/samrs`` and can load its operators.

    Args:
        plugins_dir: check this plugins dir instead of ``fo.config.plugins_dir``

    Returns:
        ``(ok, found, fix)``: ``found`` says where the plugin is and what it
        provides (or what is wrong), ``fix`` how to repair it when not ok
    """
    try:
        import fiftyone as fo
    except Exception as e:
        return False, "fiftyone is not importable: %s" % e, "pip install fiftyone-samrs"

    if plugins_dir is None:
        return _plugin_status(fo.config.plugins_dir)
    previous = fo.config.plugins_dir
    fo.config.plugins_dir = os.path.abspath(os.path.expanduser(plugins_dir))
    try:
        return _plugin_status(fo.config.plugins_dir)
    finally:
        fo.config.plugins_dir = previous


def _plugin_status(plugins_dir: str) -> Tuple[bool, str, str]:
    import fiftyone as fo
    import fiftyone.plugins as fop

    install_fix = ("run `samrs plugin install` (links the plugin into %s), or set "
                   "FIFTYONE_PLUGINS_DIR to a folder that holds it" % plugins_dir)
    found = [p for p in fop.list_plugins(enabled="all") if p.name == PLUGIN_NAME]
    if not found:
        return False, "%s not found in plugins dir %s" % (PLUGIN_NAME, plugins_dir), install_fix

    definition = found[0]
    enabled = {p.name for p in fop.list_plugins(enabled=True)}
    if PLUGIN_NAME not in enabled:
        return (False, "%s at %s is disabled" % (PLUGIN_NAME, definition.directory),
                "fiftyone plugins enable %s" % PLUGIN_NAME)
    if not definition.has_py:
        return (False, "%s at %s has no %s" % (PLUGIN_NAME, definition.directory,
                                                definition.py_entry),
                "samrs plugin install --overwrite")

    from fiftyone.plugins.context import PluginContext

    context = PluginContext(definition)
    context.register_all()
    if context.errors:
        last = context.errors[-1].strip().splitlines()[-1]
        return (False, "%s at %s fails to load: %s" % (PLUGIN_NAME, definition.directory, last),
                "check that fiftyone-samrs is installed in this Python environment, then "
                "`samrs plugin install --overwrite`")

    from fiftyone_samrs import __version__
    names = sorted(op.name for op in context.instances)
    missing = sorted(set(definition.operators) - set(names))
    if missing:
        return (False, "%s at %s does not register: %s" % (PLUGIN_NAME, definition.directory,
                                                           ", ".join(missing)),
                "samrs plugin install --overwrite")
    if str(definition.version) != __version__:
        return (False, "%s %s at %s, but fiftyone-samrs is %s"
                % (PLUGIN_NAME, definition.version, definition.directory, __version__),
                "samrs plugin install --overwrite")
    return (True, "%s %s at %s; package fiftyone-samrs %s; manifest: fiftyone %s (this is %s); "
                  "%d operators and panels: %s"
            % (PLUGIN_NAME, definition.version, definition.directory, __version__,
               definition.fiftyone_compatibility or "any", fo.__version__, len(names),
               ", ".join(names)), "")
