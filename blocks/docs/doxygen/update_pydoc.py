#!/usr/bin/env python3
#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""Docstring step of GNU Radio's pybind11 build (GrPybind.cmake).

gr-drift keeps its docstrings by hand in python/drift/bindings/docstrings/*_pydoc_template.h,
so only the `copy` step is supported: each template becomes <name>_pydoc.h in the build tree.
"""

import argparse
import glob
import os
import sys


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("function", choices=["copy"])
    parser.add_argument("--bindings_dir", required=True)
    parser.add_argument("--output_dir", required=True)
    args = parser.parse_args()
    templates = glob.glob(os.path.join(args.bindings_dir, "*_pydoc_template.h"))
    for path in templates:
        name = os.path.basename(path).replace("_template.h", ".h")
        with open(path) as src, open(os.path.join(args.output_dir, name), "w") as dst:
            dst.write(src.read())
    with open(os.path.join(args.output_dir, "docstring_status"), "w") as status:
        status.write("DONE")
    return 0


if __name__ == "__main__":
    sys.exit(main())
