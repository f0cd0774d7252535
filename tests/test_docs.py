"""README.md and docs/*.md: every shell command they show names things that exist.

Each line of a fenced ```bash / ```sh / ```shell block is one command (continuation lines joined, comments,
`VAR=value` prefixes and the `[...]` of optional parts dropped). Its entrypoint is checked against the code:
  - `make TARGET`: a target of the Makefile;
  - `bash SCRIPT ...`: the script exists and has a `case` label for every `--flag` given to it;
  - `python -m MODULE ...` (also `.venv/bin/python`): a module of this repository; its `--flag`s are given to
    `add_argument` in its source or, failing that, listed by its own `--help` (run once, in a subprocess);
  - `receipt-enricher SUBCOMMAND ...` (the console script of app.cli): the subcommand (nested ones too:
    `corrections export`) and its flags exist in the real argparse parser;
  - `deepspeed SCRIPT.py ...`: the script exists and the flags after it are its module's, checked as above.
Any word that looks like a path into the repository (`deploy/...`, `training/...`) must exist. Links between
the pages must resolve, anchors included.
Unit tier: no broker, no model, no torch in this process; the slowest part is `training.sft --help` (~10 s,
it imports transformers).
"""

from __future__ import annotations

import argparse
import ast
import functools
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.cli import build_parser

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
README_LIMIT_BYTES = 12 * 1024
SHELL_FENCES = ("bash", "sh", "shell")
# Leading words of commands that need a daemon, a cluster or a system package this machine does not have, so
# nothing of theirs can run offline here. Their repository paths are still checked below; deploy/'s files
# themselves are validated by tests/test_deploy.py.
NOT_RUN_OFFLINE = {
    "docker": "needs a Docker engine",
    "kubectl": "needs a Kubernetes cluster",
    "prometheus": "the Debian package's server; tests/test_prometheus.py runs it against real data",
    "apt-get": "installs system packages",
}
PYTHONS = {"python", "python3", ".venv/bin/python"}
# Top-level folders of the repository: a command word starting with one of these is a path that must exist.
REPO_FOLDERS = ("app/", "bench/", "deploy/", "docs/", "harness/", "model/", "schemas/", "tests/", "training/", ".ci/")
_FLAG = re.compile(r"(?<![\w-])--?[A-Za-z0-9][\w.-]*")
_ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_SEPARATORS = {"&&", "||", ";", "|"}
_PLACEHOLDERS = {"…", "...", ""}


@dataclass(frozen=True)
class Command:
    source: str  # path:line of the documentation
    argv: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.source}: {' '.join(self.argv)}"


# ---- reading the docs ---------------------------------------------------------------------------------


def _shell_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, command line) of every fenced shell block, with backslash continuations joined."""
    found: list[tuple[int, str]] = []
    in_shell = in_other = False
    pending, start = "", 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            if in_shell or in_other:
                in_shell = in_other = False
            else:
                in_shell = stripped[3:].strip().lower() in SHELL_FENCES
                in_other = not in_shell
            continue
        if not in_shell:
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        text, pending = pending + stripped, ""
        if text:
            found.append((start, text))
    return found


def _commands(path: Path) -> list[Command]:
    commands = []
    for number, line in _shell_lines(path):
        words = [word.strip("[]") for word in shlex.split(line, comments=True)]
        current: list[str] = []
        for word in [*words, ";"]:
            if word in _SEPARATORS:
                while current and _ENV_ASSIGNMENT.match(current[0]):
                    current.pop(0)
                if current:
                    commands.append(Command(f"{path.relative_to(REPO_ROOT)}:{number}", tuple(current)))
                current = []
            elif word not in _PLACEHOLDERS:
                current.append(word)
    return commands


def _all_commands() -> list[Command]:
    return [command for path in DOCS for command in _commands(path)]


def _flags(words: tuple[str, ...] | list[str]) -> list[str]:
    return [word.split("=", 1)[0] for word in words if word.startswith("-") and _FLAG.fullmatch(word.split("=", 1)[0])]


# ---- what the code offers --------------------------------------------------------------------------------


@functools.cache
def _make_targets() -> frozenset[str]:
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    return frozenset(re.findall(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", makefile, flags=re.MULTILINE))


def _module_file(module: str) -> Path | None:
    base = REPO_ROOT / module.replace(".", "/")
    for candidate in (base.with_suffix(".py"), base / "__main__.py"):
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def _declared_flags(module: str) -> frozenset[str]:
    """Option strings given literally to `add_argument` in the module's source: found without importing it."""
    source = _module_file(module)
    assert source is not None, f"no module {module} in the repository"
    flags = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
            flags |= {arg.value for arg in node.args if isinstance(arg, ast.Constant) and isinstance(arg.value, str)}
    return frozenset(flags)


@functools.cache
def _help_flags(module: str) -> frozenset[str]:
    """The option strings a repository module's `--help` lists (run in a subprocess, as a user would)."""
    source = _module_file(module)
    assert source is not None, f"no module {module} in the repository"
    # A module without a parser would not print help: it would run (schemas.publish rewrites its files).
    assert "ArgumentParser" in source.read_text(encoding="utf-8"), f"{module} takes no command-line flags"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", module, "--help"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"python -m {module} --help failed:\n{result.stderr[-2000:]}"
    # Only the option column counts: a flag named in the description or in another flag's help is not an option.
    # argparse indents that column by exactly two spaces; wrapped descriptions and help text are not.
    options = [re.split(r"\s{2,}", line.strip())[0] for line in result.stdout.splitlines() if re.match(r"  -", line)]
    return frozenset(flag for column in options for flag in _FLAG.findall(column))


@functools.cache
def _cli_subcommands() -> dict[str, frozenset[str]]:
    """receipt-enricher's subcommands and the option strings of each, from the real parser; a nested one
    (``corrections export``) under its words joined by a space."""
    found: dict[str, frozenset[str]] = {}

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found[prefix + name] = frozenset(option for a in sub._actions for option in a.option_strings)
                    walk(sub, f"{prefix}{name} ")

    walk(build_parser(), "")
    return found


# ---- the checks ----------------------------------------------------------------------------------------------


def _check_flags(command: Command, given: list[str], known: frozenset[str], what: str) -> None:
    unknown = [flag for flag in given if flag not in known and flag not in ("-h", "--help")]
    assert not unknown, f"{command}\n  {what} has no {', '.join(unknown)}"


def _check_python_module(command: Command, module: str, args: tuple[str, ...]) -> None:
    assert _module_file(module) is not None, f"{command}\n  no module {module} in the repository"
    if module == "app.cli":
        _check_receipt_enricher(command, args)
    elif flags := _flags(args):
        _check_module_flags(command, module, flags, f"python -m {module}")


def _check_module_flags(command: Command, module: str, flags: list[str], what: str) -> None:
    # Plain argparse flags are read from the source (instant); the rest, such as HfArgumentParser's dataclass
    # fields, from the module's real --help (training.sft: ~10 s, it imports transformers).
    if not set(flags) <= _declared_flags(module):
        _check_flags(command, flags, _help_flags(module), what)


def _check_receipt_enricher(command: Command, args: tuple[str, ...]) -> None:
    subcommands = _cli_subcommands()
    assert args, f"{command}\n  receipt-enricher needs a subcommand: {sorted(subcommands)}"
    name, rest = args[0], args[1:]
    if rest and f"{name} {rest[0]}" in subcommands:
        name, rest = f"{name} {rest[0]}", rest[1:]
    assert name in subcommands, f"{command}\n  receipt-enricher has no subcommand {name!r}: {sorted(subcommands)}"
    _check_flags(command, _flags(rest), subcommands[name], f"receipt-enricher {name}")


def _check_entrypoint(command: Command) -> None:
    head, args = command.argv[0], command.argv[1:]
    if head == "make":
        targets = [word for word in args if not word.startswith("-")]
        assert targets, f"{command}\n  name the make target"
        missing = [target for target in targets if target not in _make_targets()]
        assert not missing, f"{command}\n  the Makefile has no target {', '.join(missing)}"
    elif head == "bash":
        script = REPO_ROOT / args[0]
        assert script.is_file(), f"{command}\n  no script {args[0]}"
        text = script.read_text(encoding="utf-8")
        # Our scripts parse flags with `case "$1" in --port) ...`: the flag must be one of those labels.
        missing = [flag for flag in _flags(args[1:]) if not re.search(rf"(?<![\w-]){re.escape(flag)}(\|[^)\s]+)*\)", text)]
        assert not missing, f"{command}\n  {args[0]} has no case for {', '.join(missing)}"
    elif head in PYTHONS:
        assert len(args) >= 2 and args[0] == "-m", f"{command}\n  document Python entrypoints as `python -m MODULE`"
        _check_python_module(command, args[1], args[2:])
    elif head == "receipt-enricher":
        _check_receipt_enricher(command, args)
    elif head == "deepspeed":
        scripts = [word for word in args if word.endswith(".py")]
        assert scripts, f"{command}\n  the deepspeed launcher needs a script"
        script = scripts[0]
        assert (REPO_ROOT / script).is_file(), f"{command}\n  no script {script}"
        module = script.removesuffix(".py").replace("/", ".")
        flags = _flags(args[args.index(script) + 1 :])
        if flags:
            _check_module_flags(command, module, flags, script)
    else:
        assert head in NOT_RUN_OFFLINE, (
            f"{command}\n  unknown entrypoint {head!r}: add a check for it here, or list it in NOT_RUN_OFFLINE "
            "with the reason it cannot be checked"
        )


def _check_repo_paths(command: Command) -> None:
    for word in command.argv:
        value = word.split("=", 1)[1] if word.startswith("-") and "=" in word else word
        if value.startswith(REPO_FOLDERS):
            assert (REPO_ROOT / value).exists(), f"{command}\n  no such path in the repository: {value}"


_COMMANDS = _all_commands()


@pytest.mark.parametrize("command", _COMMANDS, ids=lambda c: f"{c.source}:{' '.join(c.argv[:3])}")
def test_every_documented_command_names_an_entrypoint_and_flags_that_exist(command):
    _check_entrypoint(command)
    _check_repo_paths(command)


def test_the_docs_show_commands_for_every_kind_of_entrypoint():
    """Guards the extraction itself: if it silently found nothing, every check above would pass vacuously."""
    heads = {command.argv[0] for command in _COMMANDS}
    assert {"make", "bash", "receipt-enricher", "deepspeed"} <= heads and heads & PYTHONS, heads


def test_readme_is_short_and_its_only_set_up_commands_are_make_demo_and_make_test():
    readme = REPO_ROOT / "README.md"
    size = len(readme.read_bytes())
    assert size < README_LIMIT_BYTES, f"README.md is {size} bytes; the manual belongs in docs/ (limit {README_LIMIT_BYTES})"
    commands = [" ".join(command.argv) for command in _commands(readme)]
    assert commands == ["make demo", "make test"], commands


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", path.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_every_relative_link_between_the_pages_resolves():
    broken = []
    for path in DOCS:
        text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # an external URL
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            if not linked.exists():
                broken.append(f"{path.relative_to(REPO_ROOT)}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
                broken.append(f"{path.relative_to(REPO_ROOT)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)
