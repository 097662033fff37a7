"""Publish this checkout as a Hugging Face Space: `python -m diffusion_app publish-space OWNER/NAME`.

A `git push` of this repository to a Space is refused: its history holds model weights and images as plain git
blobs, and the Hub takes binary files through LFS/Xet only. So, as the Hub's docs recommend for uploads, this
uploads the working tree's tracked files (not the history) with huggingface_hub in one commit; huggingface_hub
sends each binary file through Xet (or LFS) by itself. What a Space never runs is left out by the patterns in
SPACE_EXCLUDE. The token comes from where huggingface_hub looks (HF_TOKEN, then `hf auth login`'s cache) and is
never printed.
"""

from __future__ import annotations

import fnmatch
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .settings import REPO_ROOT

ZEROGPU = "zero-a10g"  # huggingface_hub's SpaceHardware for ZeroGPU
SPACE_EXCLUDE = (  # what a Space does not run: the suite, benchmarks, CI, docs' screenshots, Docker
    "tests/*", "benchmarks/*", ".ci/*", "scripts/*", "docs/*.png", "docs/*.jpg", "docs/*.gif",
    "Dockerfile", ".dockerignore", "requirements-dev.txt",
)


@dataclass
class SpacePlan:
    """What a publish sends: the files (relative paths and sizes) and what the patterns left out."""

    root: Path
    files: dict[str, int] = field(default_factory=dict)
    left_out: dict[str, list[str]] = field(default_factory=dict)  # pattern -> the tracked files it removed

    @property
    def total_bytes(self) -> int:
        return sum(self.files.values())


def tracked_files(root: Path) -> list[str]:
    """The files git tracks in this checkout, as they are in the working tree (deleted ones excepted)."""
    try:
        listing = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        raise ValueError(f"{root} is not a git checkout: publish-space uploads the files git tracks") from error
    return [name for name in listing.decode().split("\0") if name and (root / name).is_file()]


def plan_upload(root: Path = REPO_ROOT, exclude: tuple[str, ...] = SPACE_EXCLUDE) -> SpacePlan:
    plan = SpacePlan(root)
    for name in tracked_files(root):
        pattern = next((pattern for pattern in exclude if fnmatch.fnmatch(name, pattern)), None)
        if pattern:
            plan.left_out.setdefault(pattern, []).append(name)
        else:
            plan.files[name] = (root / name).stat().st_size
    return plan


def parse_assignments(items: list[str], kind: str, environ: dict[str, str]) -> dict[str, str]:
    """NAME=VALUE pairs; a bare NAME takes its value from this environment (so a secret stays out of the shell
    history)."""
    values = {}
    for item in items:
        name, equals, value = item.partition("=")
        if not equals:
            if name not in environ:
                raise ValueError(f"--{kind} {name}: give NAME=VALUE, or set {name} in the environment")
            value = environ[name]
        if not name.isidentifier():
            raise ValueError(f"--{kind} {item.split('=')[0]!r}: not a variable name")
        values[name] = value
    return values


def describe(plan: SpacePlan) -> str:
    lines = [f"{size / 2**20:10.2f} MB  {name}" for name, size in sorted(plan.files.items())]
    lines.append(f"{len(plan.files)} files, {plan.total_bytes / 2**20:.1f} MB in all")
    for pattern, names in plan.left_out.items():
        lines.append(f"left out by {pattern!r}: {len(names)} file(s)")
    return "\n".join(lines)


def publish(repo_id: str, plan: SpacePlan, private: bool = False, variables: dict[str, str] | None = None,
            secrets: dict[str, str] | None = None, hardware: str | None = ZEROGPU, log=print) -> str:
    """Create the Space if it is missing, set its variables and secrets, ask for its hardware, and upload the
    plan's files in one commit, deleting the Space's files that are no longer in it. Returns the Space's URL."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError

    token = get_token()
    if not token:
        raise ValueError("No Hugging Face token: run `hf auth login`, or set HF_TOKEN (a token with write access)")
    api = HfApi(token=token)
    url = api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
    log(f"Space: {url}")
    for name, value in (variables or {}).items():
        api.add_space_variable(repo_id, name, value)
        log(f"variable {name} set")
    for name, value in (secrets or {}).items():
        api.add_space_secret(repo_id, name, value)
        log(f"secret {name} set")
    if hardware:
        try:
            api.request_space_hardware(repo_id, hardware)
            log(f"hardware {hardware} requested")
        except HfHubHTTPError as error:
            log(f"Could not request {hardware} ({error.response.status_code}): pick it in the Space's Settings, "
                "Space hardware (ZeroGPU needs a PRO account or an organisation).")
    previous = api.repo_info(repo_id, repo_type="space").sha
    remote = set(api.list_repo_files(repo_id, repo_type="space"))
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(plan.root / name)) for name in plan.files]
    operations += [CommitOperationDelete(path_in_repo=name) for name in sorted(remote - set(plan.files))
                   if name != ".gitattributes"]
    commit = api.create_commit(repo_id, operations, repo_type="space",
                               commit_message="Publish Diffusion Studio from its repository")
    if commit.oid == previous:
        log("Nothing changed since the Space's last commit: nothing uploaded")
    else:
        log(f"Committed {len(plan.files)} files: {commit.commit_url}")
    return url


def add_arguments(parser) -> None:
    parser.add_argument("repo_id", metavar="OWNER/NAME", help="the Space to create or update")
    parser.add_argument("--private", action="store_true", help="create the Space private")
    parser.add_argument("--variable", action="append", default=[], metavar="NAME=VALUE",
                        help="a Space variable the app reads (DS_PRELOAD, DS_MODELS, DS_ADMINS, ...); repeatable")
    parser.add_argument("--secret", action="append", default=[], metavar="NAME[=VALUE]",
                        help="a Space secret (DS_TRAINING_AUTH, ...); a bare NAME reads it from the environment")
    parser.add_argument("--hardware", default=ZEROGPU, help=f"hardware to request ({ZEROGPU}, ZeroGPU, by default)")
    parser.add_argument("--dry-run", action="store_true", help="list what would be uploaded and its size")


def run(args) -> int:
    plan = plan_upload()
    variables = parse_assignments(args.variable, "variable", dict(os.environ))
    secrets = parse_assignments(args.secret, "secret", dict(os.environ))
    if args.dry_run:
        print(describe(plan))
        return 0
    from huggingface_hub.errors import HfHubHTTPError

    try:
        publish(args.repo_id, plan, private=args.private, variables=variables, secrets=secrets,
                hardware=args.hardware or None)
    except HfHubHTTPError as error:
        raise ValueError(f"the Hub refused: {error}") from error
    return 0
