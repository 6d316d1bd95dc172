"""--plugin by module name or by file path; every mistake in one is a one-line error naming it."""

import sys

import pytest

from benchmarks.plugins import import_plugins
from signed_saliency import methods
from signed_saliency.errors import UserError

PLUGIN = '''
from signed_saliency.methods import register

@register("{name}", direction="magnitude", needs="model")
def brightness(model, x, target):
    """The grey level."""
    return x.mean(dim=1)
'''


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """A folder for plugin files; what they register and import is undone afterwards."""
    before_methods, before_modules = set(methods.names()), set(sys.modules)
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    for name in set(methods.names()) - before_methods:
        if name in methods.registry and methods.registry.get(name).parent is None:
            methods.registry.unregister(name)
    for name in set(sys.modules) - before_modules:
        del sys.modules[name]


def write(folder, stem, text):
    path = folder / f"{stem}.py"
    path.write_text(text)
    return path


def test_a_plugin_by_module_name_registers_its_methods(plugin_dir, monkeypatch):
    write(plugin_dir, "plugin_by_name", PLUGIN.format(name="test-by-name"))
    monkeypatch.syspath_prepend(str(plugin_dir))
    (module,) = import_plugins(["plugin_by_name"])
    assert module.__name__ == "plugin_by_name" and "test-by-name" in methods.names()


@pytest.mark.parametrize("spelling", ["./{stem}.py", "{stem}.py", "sub/../{stem}.py", "{absolute}"])
def test_a_plugin_by_relative_or_absolute_file_path(plugin_dir, spelling):
    path = write(plugin_dir, "plugin_by_path", PLUGIN.format(name="test-by-path"))
    (plugin_dir / "sub").mkdir()
    (module,) = import_plugins([spelling.format(stem="plugin_by_path", absolute=path)])
    assert module.__name__ == "plugin_by_path" and "test-by-path" in methods.names()
    assert methods.get("test-by-path").fn.__module__ == "plugin_by_path"
    assert import_plugins([str(path)]) == [module]  # a second import registers nothing twice


@pytest.mark.parametrize(
    "stem, text, message",
    [
        ("bad_direction", PLUGIN.replace("magnitude", "upward").format(name="test-bad"),
         r"^plugin '\./bad_direction\.py' failed to import: method 'test-bad': direction must be one of"),
        ("bad_syntax", "def broken(:\n", r"^plugin '\./bad_syntax\.py' failed to import: SyntaxError: .*line 1"),
        ("bad_dependency", "import no_such_package_here\n",
         r"^plugin '\./bad_dependency\.py' failed to import: ModuleNotFoundError: No module named 'no_such_package_here'$"),
        ("bad_code", "1 / 0\n", r"^plugin '\./bad_code\.py' failed to import: ZeroDivisionError: division by zero$"),
    ],
)
def test_a_plugin_that_fails_to_import_is_one_line_naming_it(plugin_dir, stem, text, message):
    write(plugin_dir, stem, text)
    with pytest.raises(UserError, match=message) as caught:
        import_plugins([f"./{stem}.py"])
    assert "\n" not in str(caught.value) and caught.value.__cause__ is not None
    assert stem not in sys.modules


def test_a_plugin_that_is_not_there_says_where_it_was_looked_for(plugin_dir):
    with pytest.raises(UserError, match=r"^plugin 'no_such_plugin' not found: .* e\.g\. \./no_such_plugin\.py\)$"):
        import_plugins(["no_such_plugin"])
    with pytest.raises(UserError, match=r"^plugin '\./missing\.py': no such file .*/missing\.py$"):
        import_plugins(["./missing.py"])
