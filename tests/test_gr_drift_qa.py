"""Runs the gr-drift QA files (blocks/python/drift/**/qa_*.py) in the project's test suite.

The QA files live beside the blocks, GNU Radio style, and test the installed module
(`from gnuradio import drift`). Each is loaded by path under a unique name, so the source
directory `blocks/python/drift` is never mistaken for the `drift` Python package.
"""

import importlib.util
import inspect
import pathlib
import unittest

QA_ROOT = pathlib.Path(__file__).resolve().parent.parent / "blocks" / "python" / "drift"


def _load_qa_tests():
    found = {}
    for path in sorted(QA_ROOT.rglob("qa_*.py")):
        name = "gr_drift_" + "_".join(path.relative_to(QA_ROOT).with_suffix("").parts)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for attr, obj in vars(module).items():
            if getattr(obj, "__module__", None) != name:
                continue
            if inspect.isclass(obj) and issubclass(obj, unittest.TestCase):
                found[f"{name}__{attr}"] = obj  # collected by type, whatever its name
            elif attr.startswith("test") and inspect.isfunction(obj):
                found[f"test_{name}__{attr}"] = obj  # pytest collects test* functions
            elif attr.startswith("Test") and inspect.isclass(obj):
                found[f"Test_{name}__{attr}"] = obj
    return found


globals().update(_load_qa_tests())
