"""The docs cannot drift: every ``import``/``from fiftyone_samrs ...`` line of
the Python snippets in README.md and docs/ imports, and every ``fsr.<name>``
they use exists (issue 24: three snippets had drifted in the 0.2.0 relayout)."""

import ast
import glob
import importlib
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))


def _blocks(path):
    return re.findall(r"```python\n(.*?)```", open(path, encoding="utf-8").read(), re.S)


def _package_imports(code):
    """The import statements of fiftyone_samrs in a snippet (unparsable
    snippets: their import lines one by one)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        lines = [ln.strip() for ln in code.splitlines()
                 if re.match(r"\s*(from|import) fiftyone_samrs", ln) and "(" not in ln]
        return [ast.parse(ln).body[0] for ln in lines]
    return [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
            and any(m.startswith("fiftyone_samrs")
                    for m in ([n.module or ""] if isinstance(n, ast.ImportFrom)
                              else [a.name for a in n.names]))]


@pytest.mark.parametrize("path", PAGES, ids=[os.path.relpath(p, ROOT) for p in PAGES])
def test_every_package_import_of_the_snippets_works(path):
    checked = 0
    for code in _blocks(path):
        for node in _package_imports(code):
            exec(compile(ast.Module(body=[node], type_ignores=[]), path, "exec"), {})
            checked += 1
    if "fiftyone_samrs" in "".join(_blocks(path)):
        assert checked


@pytest.mark.parametrize("path", PAGES, ids=[os.path.relpath(p, ROOT) for p in PAGES])
def test_every_fsr_name_of_the_docs_exists(path):
    import fiftyone_samrs as fsr

    text = open(path, encoding="utf-8").read()
    for chain in sorted(set(re.findall(r"\bfsr((?:\.[A-Za-z_]\w*)+)", text))):
        obj = fsr
        for name in chain.strip(".").split("."):
            if not hasattr(obj, name) and isinstance(obj, type(fsr)):
                try:
                    importlib.import_module("%s.%s" % (obj.__name__, name))
                except ImportError:
                    pass
            assert hasattr(obj, name), "%s: fsr%s does not exist" % (os.path.basename(path),
                                                                       chain)
            obj = getattr(obj, name)

