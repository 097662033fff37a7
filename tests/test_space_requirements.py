"""scripts/check_space_requirements.py: which pins a Space's Python can install, from an index's file lists."""

from __future__ import annotations

import sys

import pytest

from running_app import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "scripts"))
from check_space_requirements import check, header_python  # noqa: E402

INDEX = {  # a few real file names and Requires-Python values, as PyPI's simple API lists them
    "pandas": [{"filename": "pandas-3.1.1-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
                "requires-python": ">=3.11"},
               {"filename": "pandas-3.1.1-cp312-cp312-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
                "requires-python": ">=3.11"},
               {"filename": "pandas-3.1.1.tar.gz", "requires-python": ">=3.11"}],
    "torch": [{"filename": "torch-2.11.0-cp312-cp312-manylinux_2_28_x86_64.whl", "requires-python": ">=3.10"},
              {"filename": "torch-2.11.0-cp312-cp312-win_amd64.whl", "requires-python": ">=3.10"},
              {"filename": "torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl", "requires-python": ">=3.10"}],
    "spaces": [{"filename": "spaces-0.51.3-py3-none-any.whl", "requires-python": ">=3.10, <3.15"}],
    "oldpkg": [{"filename": "oldpkg-1.0-cp38-cp38-manylinux1_x86_64.whl", "requires-python": None}],
}


def files(name: str) -> list[dict]:
    return INDEX[name]


def test_the_readme_header_names_a_python_zerogpu_runs():
    python = header_python((REPO_ROOT / "README.md").read_text())
    assert python in ("3.12.12", "3.10.13")
    assert header_python("---\ntitle: x\nsdk: gradio\n---\n") == "3.10"  # a Space's default


def test_pins_are_checked_for_the_spaces_python_and_markers():
    requirements = """
        torch==2.13.0; python_version < "3.12"   # local machines
        torch==2.11.0; python_version >= "3.12"  # the Space
        pandas==3.1.1
        spaces==0.51.3
    """
    assert check(requirements, "3.12.12", files) == []


@pytest.mark.parametrize("requirement, python, problem", [
    ("pandas==3.1.1", "3.10", "pandas==3.1.1: no wheel or source distribution for Python 3.10"),
    ("torch==2.13.0", "3.12", "torch==2.13.0: no wheel"),  # only a cp311 wheel of that version
    ("oldpkg==1.0", "3.12", "oldpkg==1.0: no wheel"),
    ("pandas>=3", "3.12", "pandas>=3: not pinned with =="),
])
def test_a_pin_without_a_release_for_the_python_fails(requirement, python, problem):
    problems = check(requirement, python, files)
    assert len(problems) == 1 and problems[0].startswith(problem)
