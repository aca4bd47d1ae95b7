"""Every command in README.md, docs/*.md and cmds.txt works.

See docs/contributing.md, "Commands in the docs are tested":

* ``python train_script.py <subcommand> ...``: parsed by the real CLI with ``--print_config``;
* ``python -m <module> ...``: imports and answers ``--help``;
* ``bash <script>`` passes ``bash -n``; ``python <file.py>`` exists; ``python -c`` code compiles;
  other programs are on the PATH;
* lines whose trailing comment contains ``doc-test: run`` are run for real in a temporary
  working directory (slow).

Synopsis lines with placeholders (``<dataset>``, ``[--synthetic]``, ``config/X.yaml``, ...) are
skipped with the reason shown.
"""

from __future__ import annotations

import importlib.util
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MARKER = "doc-test: run"
FENCE_LANGUAGES = ("bash", "sh", "shell", "console")
CONTROL_OPERATORS = {"||", "&&", ";", "|", "&"}
LAUNCHERS = ("srun", "mpirun", "nohup", "time")
# Linked into the working directory of commands run for real, so relative paths in the docs resolve
# while datasets/ and runs/ are created in the temporary directory.
LINKED = ("config", "bench", "scripts", "train_script.py", "pyproject.toml")
CONSOLE_COMMAND = "event-lightning"  # pyproject.toml [project.scripts]
CONSOLE_MODULES = {"data": "event_lightning.data", "export": "event_lightning.export"}
LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test", "predict")
PLACEHOLDERS = (
    (re.compile(r"^\[(--|[A-Za-z])"), "an [optional part]"),
    (re.compile(r"\{[^{}]*,[^{}]*\}"), "a {choice,list}"),
    (re.compile(r"^\.\.\.$"), "'...'"),
    (re.compile(r"(^|/)X\.yaml$"), "config/X.yaml"),
    (re.compile(r"^[A-Z][A-Z_]{2,}(:\d+)?$"), "an UPPER-CASE placeholder"),
)


@dataclass(frozen=True)
class DocLine:
    """One command line of a doc file: where it is, the shell text without its comment, the comment."""

    source: str
    text: str
    comment: str

    @property
    def quick(self) -> bool:
        return MARKER in self.comment


def split_comment(line: str) -> tuple[str, str]:
    """``cmd args  # comment`` -> (``cmd args``, ``comment``); a ``#`` inside quotes or a word is kept."""
    quote = None
    for index, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip(), line[index + 1 :].strip()
    return line.rstrip(), ""


def _join_continuations(numbered: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Join lines ending in a backslash with the next ones (the first line's number is kept)."""
    joined: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, line in numbered:
        if pending is not None:
            number, line = pending[0], pending[1] + " " + line.strip()
            pending = None
        if line.rstrip().endswith("\\"):
            pending = (number, line.rstrip()[:-1].rstrip())
            continue
        joined.append((number, line))
    if pending is not None:
        joined.append(pending)
    return joined


def fenced_shell_lines(markdown: str) -> list[tuple[int, str]]:
    """(line number, line) of every line inside fenced bash/sh/shell/console blocks."""
    lines: list[tuple[int, str]] = []
    inside = False
    for number, line in enumerate(markdown.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("```"):
            inside = not inside and stripped[3:].strip().lower() in FENCE_LANGUAGES
            continue
        if inside:
            lines.append((number, line))
    return _join_continuations(lines)


def doc_lines(path: Path) -> list[DocLine]:
    """The command lines of one file (markdown fences, or every line of a plain command list)."""
    text = path.read_text(encoding="utf-8")
    numbered = (
        fenced_shell_lines(text)
        if path.suffix == ".md"
        else _join_continuations(list(enumerate(text.splitlines(), start=1)))
    )
    out = []
    for number, line in numbered:
        command, comment = split_comment(line.strip().removeprefix("$ "))
        if command:
            out.append(DocLine(f"{path.relative_to(REPO)}:{number}", command, comment))
    return out


def doc_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "cmds.txt"]


def all_doc_lines() -> list[DocLine]:
    return [line for path in doc_files() for line in doc_lines(path)]


def simple_commands(text: str) -> list[list[str]]:
    """Shell words of each simple command of a line (split at ``||``, ``&&``, ``;``, ``|``); redirections dropped."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    redirect = False
    for token in lexer:
        if token in CONTROL_OPERATORS:
            commands.append([])
        elif token in (">", ">>", "<", "2>", "&>"):
            redirect = True
        elif redirect:
            redirect = False
        else:
            commands[-1].append(token)
    return [words for words in commands if words]


def placeholder(words: list[str]) -> str | None:
    for word in words:
        for pattern, what in PLACEHOLDERS:
            if pattern.search(word):
                return f"synopsis with {what}: {word!r}"
    return None


def strip_prefixes(words: list[str]) -> list[str]:
    """Drop ``VAR=value`` assignments and launchers (``srun``) in front of the program."""
    while words and (re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]) or words[0] in LAUNCHERS):
        words = words[1:]
    return words


@dataclass(frozen=True)
class Check:
    """One simple command to check: its kind and words."""

    source: str
    kind: str  # "cli", "module", "pycode", "pyfile", "bash", "program", "skip"
    words: tuple[str, ...]
    reason: str = ""

    @property
    def id(self) -> str:
        return f"{self.source} {shlex.join(self.words)}"[:150]


def classify(line: DocLine) -> list[Check]:
    checks = []
    angle = re.search(r"<[A-Za-z][^<>]*>", line.text)  # before tokenising, where < and > read as redirections
    if angle:
        return [
            Check(line.source, "skip", tuple(shlex.split(line.text)), f"synopsis with a <placeholder>: {angle[0]!r}")
        ]
    for words in simple_commands(line.text):
        words = strip_prefixes(words)
        reason = placeholder(words)
        if reason:
            checks.append(Check(line.source, "skip", tuple(words), reason))
            continue
        script = next((i for i, w in enumerate(words) if Path(w).name == "train_script.py"), None)
        if script is not None:
            checks.append(Check(line.source, "cli", tuple(words[script + 1 :])))
        elif words[0] == CONSOLE_COMMAND:
            checks.append(console_check(line.source, words[1:]))
        elif words[0] in ("python", "python3") and len(words) > 2 and words[1] == "-m":
            checks.append(Check(line.source, "module", tuple(words[2:])))
        elif words[0] in ("python", "python3") and len(words) > 2 and words[1] == "-c":
            checks.append(Check(line.source, "pycode", (words[2],)))
        elif words[0] in ("python", "python3") and len(words) > 1 and words[1].endswith(".py"):
            checks.append(Check(line.source, "pyfile", tuple(words[1:])))
        elif words[0] == "bash" and len(words) > 1:
            checks.append(Check(line.source, "bash", tuple(words[1:])))
        else:
            checks.append(Check(line.source, "program", tuple(words)))
    return checks


def console_check(source: str, words: list[str]) -> Check:
    """``event-lightning ...``: its LightningCLI subcommands are checked as ``train_script.py``'s, ``data`` and
    ``export`` as ``python -m event_lightning.data`` / ``.export``, anything else as ``python -m event_lightning``."""
    if words and words[0] in CONSOLE_MODULES:
        return Check(source, "module", (CONSOLE_MODULES[words[0]], *words[1:]))
    if words and words[0] in LIGHTNING_SUBCOMMANDS:
        return Check(source, "cli", tuple(words))
    return Check(source, "module", ("event_lightning", *words))


def _unique(checks: list[Check], key) -> list[Check]:
    seen: dict = {}
    for check in checks:
        seen.setdefault(key(check), check)
    return list(seen.values())


ALL_CHECKS = [check for line in all_doc_lines() for check in classify(line)]
CLI_CHECKS = _unique([c for c in ALL_CHECKS if c.kind == "cli"], lambda c: c.words)


def _module_key(check: Check) -> tuple[str, ...]:
    """Module plus its leading positional words (subcommands), which ``--help`` is asked of."""
    words = list(check.words)
    positional = [words[0]]
    for word in words[1:]:
        if word.startswith("-"):
            break
        positional.append(word)
    return tuple(positional)


MODULE_CHECKS = _unique([c for c in ALL_CHECKS if c.kind == "module"], _module_key)
OTHER_CHECKS = _unique(
    [c for c in ALL_CHECKS if c.kind in ("pycode", "pyfile", "bash", "program", "skip")], lambda c: c.words
)


def _quick_lines() -> list[DocLine]:
    """Marked lines in file order, the first of identical commands only."""
    unique: dict[str, DocLine] = {}
    for line in all_doc_lines():
        if line.quick:
            unique.setdefault(" ; ".join(shlex.join(words) for words in simple_commands(line.text)), line)
    return list(unique.values())


QUICK_LINES = _quick_lines()

# What the README promises of the quickstart ("Quickstart figures"), checked on the output of the
# real `test` command of docs/quickstart.md, run after the documented `fit`.
QUICKSTART_TEST = ("test", "--config", "config/quickstart.yaml")
QUICKSTART_MIN_TEST_ACCURACY = 0.95


def reported_metric(output: str, name: str) -> float:
    """A metric from the table Lightning prints after ``validate`` / ``test`` (rich or plain)."""
    match = re.search(rf"{re.escape(name)}[\s│┃|]+([0-9]*\.[0-9]+)", output)
    if match is None:
        raise AssertionError(f"{name} is not in the command's output:\n{output[-2000:]}")
    return float(match.group(1))


# --------------------------------------------------------------------------- extraction


def test_extraction_reads_fences_comments_continuations_and_markers(tmp_path, monkeypatch):
    markdown = """text
```bash
python train_script.py fit --config config/a.yaml   # the quickstart; doc-test: run
# a comment line
python -m bench \\
    --quick          # continued
echo "a # b" > out.txt
```

```python
print("not a shell block")
```
```sh
A=1 python -c "print('x')" || pip uninstall -y torchvision
```
"""
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    path = tmp_path / "page.md"
    path.write_text(markdown)
    lines = doc_lines(path)
    assert [(line.source, line.text, line.quick) for line in lines] == [
        ("page.md:3", "python train_script.py fit --config config/a.yaml", True),
        ("page.md:5", "python -m bench --quick", False),
        ("page.md:7", 'echo "a # b" > out.txt', False),
        ("page.md:14", "A=1 python -c \"print('x')\" || pip uninstall -y torchvision", False),
    ]
    kinds = [[(c.kind, c.words) for c in classify(line)] for line in lines]
    assert kinds == [
        [("cli", ("fit", "--config", "config/a.yaml"))],
        [("module", ("bench", "--quick"))],
        [("program", ("echo", "a # b"))],
        [("pycode", ("print('x')",)), ("program", ("pip", "uninstall", "-y", "torchvision"))],
    ]
    synopsis = classify(DocLine("x", "python -m event_lightning.data prepare <dataset> --root DIR [--synthetic]", ""))
    assert synopsis[0].kind == "skip" and "<placeholder>" in synopsis[0].reason
    # the console command: LightningCLI subcommands, data / export, the rest as python -m event_lightning
    console = [classify(DocLine("x", f"event-lightning {rest}", ""))[0] for rest in ("fit --config quickstart",
               "data inspect nmnist --root d", "export --ckpt_path a --output b", "--help")]  # fmt: skip
    assert [(c.kind, c.words[:2]) for c in console] == [
        ("cli", ("fit", "--config")),
        ("module", ("event_lightning.data", "inspect")),
        ("module", ("event_lightning.export", "--ckpt_path")),
        ("module", ("event_lightning", "--help")),
    ]
    # a list value is not an optional part
    assert (
        classify(DocLine("x", "python train_script.py test --data.init_args.camera_views [2,3]", ""))[0].kind == "cli"
    )


def test_the_docs_have_the_commands_this_test_relies_on():
    sources = {check.source.split(":")[0] for check in ALL_CHECKS}
    assert {"README.md", "cmds.txt", "docs/quickstart.md", "docs/installation.md"} <= sources
    assert ("fit", "--config", "config/quickstart.yaml") in {c.words for c in CLI_CHECKS}
    assert any(line.source.startswith("docs/quickstart.md") for line in QUICK_LINES)
    assert len(CLI_CHECKS) >= 50  # cmds.txt alone lists every reproduction run


# --------------------------------------------------------------------------- train_script.py


class _ParserBuilt(Exception):
    pass


@pytest.fixture(scope="module")
def cli_parser():
    """The parser of the real CLI class, built once (LightningCLI builds it before parsing)."""
    import pytorch_lightning as pl

    from event_lightning.cli import EventLightningCLI

    class ParseOnly(EventLightningCLI):
        def parse_arguments(self, parser, args):
            raise _ParserBuilt(parser)

    with pytest.raises(_ParserBuilt) as built:
        ParseOnly(pl.LightningModule, pl.LightningDataModule, args=["fit"])
    return built.value.args[0]


def _workdir(tmp_path: Path) -> Path:
    for name in LINKED:
        (tmp_path / name).symlink_to(REPO / name)
    return tmp_path


@pytest.mark.parametrize("check", CLI_CHECKS, ids=lambda c: c.id)
def test_train_script_command_parses(check, cli_parser, tmp_path, monkeypatch, capsys):
    from event_lightning.cli import _inject_saved_config
    from event_lightning.config_files import find_config, resolve_config_arguments

    args = list(check.words)
    for index, word in enumerate(args[:-1]):
        if word == "--config":
            config = args[index + 1]
            found = (REPO / config).is_file() or Path(find_config(config)).is_file()
            assert found, f"{check.source}: config {config} does not exist (neither a file nor a packaged config)"
    monkeypatch.chdir(_workdir(tmp_path))
    if "--resume" in args and "--config" not in args:
        # `fit --resume PATH` reads PATH's run's saved config.yaml: give it the run's config, as `fit` saves it.
        run = Path(args[args.index("--resume") + 1]).parent.parent
        config = REPO / "config" / f"{run.parent.name}.yaml"
        assert config.is_file(), f"{check.source}: the run {run} needs config/{run.parent.name}.yaml"
        run.mkdir(parents=True)
        shutil.copy(config, run / "config.yaml")
    args = _inject_saved_config(resolve_config_arguments(args))
    class_help = any(word.endswith(".help") for word in args)  # --model.help NAME prints the class's options
    if "--print_config" not in args and not class_help:
        args.append("--print_config")
    with pytest.raises(SystemExit) as exit_info:
        cli_parser.parse_args(args)
    captured = capsys.readouterr()
    assert exit_info.value.code == 0, f"{check.source}: {shlex.join(check.words)}\n{captured.err[-3000:]}"
    if class_help:
        assert "usage:" in captured.out
    else:
        assert "class_path" in captured.out  # the resolved config was printed


# --------------------------------------------------------------------------- python -m


def _python_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    # this checkout's package, whichever copy an editable install elsewhere points to
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(REPO), env.get("PYTHONPATH"))))
    return env


@pytest.mark.parametrize("check", MODULE_CHECKS, ids=lambda c: c.id)
def test_python_module_command_answers_help(check, monkeypatch, capsys):
    module = check.words[0]
    assert importlib.util.find_spec(module) is not None, f"{check.source}: no module {module}"
    # In-process (as `python -m` runs it: the module as __main__ with sys.argv set), which avoids a
    # fresh interpreter importing torch and Lightning for every module.
    monkeypatch.setattr(sys, "argv", [module, *_module_key(check)[1:], "--help"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    captured = capsys.readouterr()
    assert exit_info.value.code in (0, None), f"{check.source}: {shlex.join(sys.argv)}\n{captured.err[-3000:]}"
    assert "usage" in captured.out.lower()


# --------------------------------------------------------------------------- other commands


@pytest.mark.parametrize("check", OTHER_CHECKS, ids=lambda c: c.id)
def test_other_command_is_well_formed(check):
    if check.kind == "skip":
        pytest.skip(check.reason)
    if check.kind == "pycode":
        compile(check.words[0], f"{check.source} (python -c)", "exec")
    elif check.kind == "pyfile":
        assert (REPO / check.words[0]).is_file(), f"{check.source}: no file {check.words[0]}"
    elif check.kind == "bash":
        script = REPO / check.words[0]
        assert script.is_file(), f"{check.source}: no script {check.words[0]}"
        result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    else:
        program = check.words[0]
        on_path = shutil.which(program, path=_python_env()["PATH"])
        assert on_path is not None, f"{check.source}: program {program!r} is not installed"


# --------------------------------------------------------------------------- doc-test: run


@pytest.mark.slow
def test_quick_commands_run_for_real(tmp_path):
    """The marked commands, in file order, each once, in one temporary working directory."""
    assert QUICK_LINES, f"no command is marked '{MARKER}'"
    workdir = _workdir(tmp_path)
    tested_quickstart = False
    for line in QUICK_LINES:
        started = time.perf_counter()
        result = subprocess.run(
            ["bash", "-c", line.text], cwd=workdir, capture_output=True, text=True, timeout=900, env=_python_env()
        )
        seconds = time.perf_counter() - started
        print(f"{seconds:6.1f} s  {line.source}: {line.text}")  # shown with pytest -s
        assert result.returncode == 0, (
            f"{line.source}: {line.text} (exit {result.returncode} after {seconds:.0f} s)\n"
            f"{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
        )
        if any(tuple(words[2:5]) == QUICKSTART_TEST for words in simple_commands(line.text)):
            accuracy = reported_metric(result.stdout, "test/acc")
            assert accuracy >= QUICKSTART_MIN_TEST_ACCURACY, f"{line.source}: quickstart test accuracy {accuracy}"
            tested_quickstart = True
    assert tested_quickstart, f"no '{shlex.join(QUICKSTART_TEST)}' command is marked '{MARKER}'"
    # relative data and log paths landed in the temporary directory, not in the repository
    assert (workdir / "runs").is_dir() or not any("train_script.py" in line.text for line in QUICK_LINES)
