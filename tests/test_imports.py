"""``import signed_saliency`` stays light: heavy libraries load where they are used."""

import json
import subprocess
import sys
from pathlib import Path

from signed_saliency.lazy import lazy_import

ROOT = Path(__file__).resolve().parent.parent
# captum brings matplotlib and IPython; any part of torchvision brings all of it and
# torch._dynamo: together they tripled the import's time
HEAVY = ["captum", "skimage", "seaborn", "matplotlib", "torchvision", "torch._dynamo", "pandas", "scipy"]


def test_importing_the_package_loads_none_of_the_heavy_libraries():
    code = f"import json, sys, signed_saliency; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert json.loads(result.stdout) == []


def test_a_lazy_import_stands_for_its_target_once_used():
    counter_class = lazy_import("collections", "Counter")
    assert "not imported yet" in repr(counter_class)
    counts = counter_class("aab")
    assert counts["a"] == 2 and isinstance(counts, counter_class)
    assert lazy_import("os.path").join("a", "b") == "a/b"
    assert lazy_import("collections", "OrderedDict.fromkeys")("ab") == {"a": None, "b": None}
