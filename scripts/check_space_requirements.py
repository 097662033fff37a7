"""Does every pinned requirement install on the Hugging Face Space this repository describes?

    python scripts/check_space_requirements.py [--requirements FILE] [--readme FILE] [--index-url URL]

A Space installs requirements.txt with the Python its README header names (`python_version`; 3.10 when it
names none) on x86_64 Linux. For that Python, this evaluates each requirement's markers, and asks the package
index, through its JSON simple API (PEP 691, what pip reads), whether the pinned version has a file the Space
can install: a wheel whose tags that CPython on manylinux accepts, or a source distribution, in either case
with a Requires-Python that admits the version. Only the file lists are fetched, never a wheel. Exits 1
listing every requirement that has no such file, or is not pinned with ==.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import urllib.request
from pathlib import Path
from typing import Callable

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.tags import compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
from packaging.version import Version

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PYTHON = "3.10"  # what a Space runs when its header names no python_version
SPACE_GLIBC_MINORS = range(36, 4, -1)  # manylinux_2_36 (Debian bookworm, the Spaces image) and older
PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in SPACE_GLIBC_MINORS] + [
    "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64", "linux_x86_64"]
JSON_SIMPLE = "application/vnd.pypi.simple.v1+json"


def header_python(readme: str) -> str:
    """The python_version of a README's YAML header, or the Space default."""
    header = readme.split("---")[1] if readme.startswith("---") else ""
    match = re.search(r"^python_version:\s*[\"']?([\d.]+)", header, flags=re.M)
    return match[1] if match else DEFAULT_PYTHON


def environment(python: str) -> dict[str, str]:
    """The marker environment of CPython `python` on x86_64 Linux."""
    short = ".".join(python.split(".")[:2])
    return {"python_version": short, "python_full_version": python if python.count(".") == 2 else f"{short}.0",
            "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
            "implementation_name": "cpython", "platform_python_implementation": "CPython"}


def supported_tags(python: str) -> set:
    major, minor = (int(part) for part in python.split(".")[:2])
    version = (major, minor)
    return set(cpython_tags(version, platforms=PLATFORMS)) | set(
        compatible_tags(version, interpreter=f"cp{major}{minor}", platforms=PLATFORMS))


def installable(files: list[dict], version: Version, python: str) -> bool:
    """Whether one of a project's index files is `version`, admits `python`, and is a wheel with a supported
    tag or a source distribution."""
    tags = supported_tags(python)
    full = environment(python)["python_full_version"]
    for file in files:
        name = file["filename"]
        if file.get("yanked") or not SpecifierSet(file.get("requires-python") or "").contains(full):
            continue
        if name.endswith(".whl"):
            _, file_version, _, file_tags = parse_wheel_filename(name)
            if file_version == version and tags & set(file_tags):
                return True
        elif name.endswith((".tar.gz", ".zip")):
            try:
                _, file_version = parse_sdist_filename(name)
            except ValueError:
                continue
            if file_version == version:
                return True
    return False


def check(requirements: str, python: str, index_files: Callable[[str], list[dict]]) -> list[str]:
    """Problems with the requirements for `python`: one line each; an empty list when all install."""
    problems = []
    env = environment(python)
    for line in requirements.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate(env):
            continue
        pins = [spec for spec in requirement.specifier if spec.operator == "=="]
        if len(pins) != 1:
            problems.append(f"{line}: not pinned with ==")
            continue
        version = Version(pins[0].version)
        if not installable(index_files(requirement.name), version, python):
            problems.append(f"{requirement.name}=={version}: no wheel or source distribution for Python {python} "
                            "on x86_64 Linux")
    return problems


def simple_index(index_url: str) -> Callable[[str], list[dict]]:
    """A project's files from a PEP 691 index: [{'filename', 'requires-python', 'yanked'}, ...]."""
    def files(name: str) -> list[dict]:
        request = urllib.request.Request(f"{index_url.rstrip('/')}/{canonicalize_name(name)}/",
                                         headers={"Accept": JSON_SIMPLE})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)["files"]
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requirements", type=Path, default=REPO_ROOT / "requirements.txt")
    parser.add_argument("--readme", type=Path, default=REPO_ROOT / "README.md")
    parser.add_argument("--index-url", default=os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple"))
    args = parser.parse_args(argv)
    python = header_python(args.readme.read_text())
    problems = check(args.requirements.read_text(), python, simple_index(args.index_url))
    for problem in problems:
        print(f"MISSING {problem}", file=sys.stderr)
    print(f"{args.requirements.name} for Python {python} on a Space (x86_64 Linux): "
          f"{'every pin installs' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
