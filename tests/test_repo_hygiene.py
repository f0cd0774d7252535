"""What the repository tracks works on any machine: no links or paths into one developer's machine.

A tracked `.venv` link to an absolute path once made both README commands fail on every fresh clone
while every run on the machine that made it stayed green.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

# Absolute paths of the places developer and CI machines keep work trees, venvs and homes, and the
# sibling folder of shared notes that sits beside a developer's checkout but not beside a user's.
_MACHINE_PATH = re.compile(r"(?<![\w.])(/work/|/home/\w|/Users/\w|/root/|/tmp/bash_jobs)|\.\./" + "shared")


def _tracked() -> list[tuple[str, str]]:
    """(mode, path) of every tracked file, from git's index."""
    try:
        listing = subprocess.run(
            ["git", "ls-files", "-s", "-z"], cwd=REPO_ROOT, capture_output=True, check=True
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.fail(f"the hygiene checks need a git checkout with git on PATH: {error}")
    entries = []
    for record in filter(None, listing.split("\0")):
        meta, path = record.split("\t", 1)
        entries.append((meta.split()[0], path))
    return entries


def _link_leaves_repo(path: str, root: Path = REPO_ROOT) -> bool:
    target = os.readlink(root / path)
    if os.path.isabs(target):
        return True
    resolved = os.path.normpath(os.path.join(os.path.dirname(path), target))
    return resolved == ".." or resolved.startswith("../")


def test_no_tracked_symbolic_link_points_outside_the_repository():
    links = [path for mode, path in _tracked() if mode == "120000"]
    leaving = [f"{path} -> {os.readlink(REPO_ROOT / path)}" for path in links if _link_leaves_repo(path)]
    assert not leaving, f"tracked links that leave the repository (git rm --cached them): {leaving}"


def test_no_tracked_file_names_a_path_of_a_developer_machine():
    found = []
    for mode, path in _tracked():
        if mode == "120000" or path == "tests/test_repo_hygiene.py":
            continue
        data = (REPO_ROOT / path).read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary (images, model files)
        for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
            if _MACHINE_PATH.search(line):
                found.append(f"{path}:{number}: {line.strip()[:120]}")
    assert not found, "tracked files name paths that exist only on a developer's machine:\n" + "\n".join(found)


def test_the_link_check_flags_absolute_and_upward_links_but_not_inner_ones(tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / ".venv").symlink_to("/work/venv")
    (tmp_path / "up").symlink_to("../elsewhere")
    (tmp_path / "tests" / "inner").symlink_to("../up")
    (tmp_path / "tests" / "sneaky").symlink_to("../../outside")
    assert _link_leaves_repo(".venv", tmp_path)
    assert _link_leaves_repo("up", tmp_path)
    assert not _link_leaves_repo("tests/inner", tmp_path)
    assert _link_leaves_repo("tests/sneaky", tmp_path)


def test_gitignore_ignores_a_venv_whether_folder_or_link():
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "--no-index", ".venv"], cwd=REPO_ROOT, capture_output=True
    )
    assert ignored.returncode == 0, ".gitignore must ignore `.venv` itself (a `.venv/` pattern misses a link)"
