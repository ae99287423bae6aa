"""The four command lines agree: the same flag for the same thing, --version, --quiet, a --help that
ends with exit codes, environment and an example; the console scripts; pyproject.toml and the
requirements files declare every third-party import, and matplotlib only as the `plot` extra."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from ops.core import cli
from ops.drill.__main__ import main as drill_main
from ops.metrics import __main__ as metrics_cli
from ops.migrate.__main__ import main as migrate_main
from ops.preview import __main__ as preview_cli
from ops.rehearse.__main__ import main as rehearse_main
from ops.retention.__main__ import main as retention_main
from ops.tenants.__main__ import main as tenants_main
from ops.verify.__main__ import main as verify_main

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

COMMANDS = {"rehearse": rehearse_main, "verify": verify_main, "metrics": metrics_cli.main,
            "preview": preview_cli.main, "migrate": migrate_main, "drill": drill_main, "retention": retention_main,
            "tenants": tenants_main}
SUBCOMMANDS = {"rehearse": [[]], "verify": [[]], "metrics": [["snapshot"], ["diff"], ["check"]],
               "preview": [["plan"], ["diff"], ["summarize"]], "migrate": [["status"], ["resolve"]], "drill": [[]],
               "retention": [[]], "tenants": [["registry"]]}


def run_main(main, argv, capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def help_of(command: str, sub: list[str], capsys) -> str:
    code, out, _ = run_main(COMMANDS[command], [*sub, "--help"], capsys)
    assert code == 0
    return out


@pytest.mark.parametrize("command", COMMANDS)
def test_version_is_the_project_version(command, capsys):
    code, out, _ = run_main(COMMANDS[command], ["--version"], capsys)
    assert code == 0
    assert out.split()[-1] == cli.version() == cli.VERSION


@pytest.mark.parametrize("command, sub", [(c, s) for c, subs in SUBCOMMANDS.items() for s in subs])
def test_help_ends_with_exit_codes_environment_and_an_example(command, sub, capsys):
    out = help_of(command, sub, capsys)
    epilog = out[out.index("\nexit codes:\n"):]
    assert re.search(r"^  0 .*\n  1 .*\n  2 ", epilog, re.M)
    assert ("  130  interrupted" in epilog) == (command == "rehearse")
    assert "\nenvironment:\n" in epilog and "\nexample:\n  python -m ops." in epilog
    assert "--quiet" in out


def test_each_command_names_the_environment_it_reads(capsys):
    assert "PGPASSWORD, PGPASSFILE" in help_of("rehearse", [], capsys)
    verify = help_of("verify", [], capsys)
    assert all(name in verify for name in ("UMAMI_DB_PASSWORD", "UMAMI_ADMIN_DSN", "PGPASSFILE", "AWS_"))
    assert "UMAMI_ADMIN_DSN" in help_of("metrics", ["snapshot"], capsys)


def options(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", text.split("\nexit codes:")[0]))


def test_the_same_thing_has_the_same_flag_everywhere(capsys):
    flags = {(c, " ".join(s)): options(help_of(c, s, capsys)) for c, subs in SUBCOMMANDS.items() for s in subs}
    everywhere = set().union(*flags.values())
    assert not everywhere & {"--host", "--port", "--dsn-host", "--overrides"}
    for command in [("verify", ""), ("metrics", "snapshot"), ("metrics", "check"), ("migrate", "status"),
                    ("migrate", "resolve"), ("retention", "")]:
        assert {"--stack", "--outputs", "--db-host", "--db-port"} <= flags[command]
    assert {"--stack", "--outputs", "--format"} <= flags[("drill", "")]
    assert "--write-outputs" in flags[("rehearse", "")] and "--outputs" not in flags[("rehearse", "")]
    assert {"--stack", "--set"} <= flags[("preview", "plan")] and {"--stack", "--set"} <= flags[("rehearse", "")]
    assert all("--format" in flags[c] for c in [("verify", ""), ("metrics", "diff"), ("preview", "diff")])
    assert all("--fail-on" in flags[c] for c in [("verify", ""), ("preview", "diff"), ("preview", "summarize")])


def test_rehearse_outputs_reads_so_writing_is_write_outputs(capsys):
    code, out, err = run_main(rehearse_main, ["--stack", "dev", "--outputs", "o.json"], capsys)
    assert code == 2 and out == ""
    assert err.splitlines() == ["error: --outputs reads stack outputs in every command; "
                                "to write them here use --write-outputs o.json"]


def test_metrics_old_host_and_port_spelling_still_works_with_a_note(capsys):
    args = cli.parse_args(metrics_cli.build_parser(), ["check", "--baseline", "b.json", "--host", "h", "--port", "6"])
    assert (args.db_host, args.db_port) == ("h", 6)
    assert capsys.readouterr().err.splitlines() == ["note: --host is deprecated; use --db-host",
                                                    "note: --port is deprecated; use --db-port"]


@pytest.mark.parametrize("argv", [["-q", "diff", "a", "b"], ["diff", "a", "b", "--quiet"]])
def test_quiet_silences_progress_before_or_after_the_subcommand(argv, capsys):
    try:
        assert cli.parse_args(metrics_cli.build_parser(), argv).quiet is True
        cli.progress("hidden")
        assert capsys.readouterr().err == ""
    finally:
        cli.parse_args(metrics_cli.build_parser(), ["diff", "a", "b"])
    cli.progress("shown")
    assert capsys.readouterr().err == "shown\n"


def test_plot_without_matplotlib_is_one_line_exit_2(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(metrics_cli, "plot_available", lambda: False)
    code, out, err = run_main(metrics_cli.main, ["diff", "a.json", "b.json", "--plot", str(tmp_path / "p.png")], capsys)
    assert code == 2 and out == ""
    (line,) = err.splitlines()
    assert line.startswith("error: --plot needs matplotlib") and "pip install '.[plot]'" in line


# -- packaging -------------------------------------------------------------------------

def requirement_names(lines) -> dict[str, str]:
    names = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            names[re.split(r"[\s\[=<>!~;,]", line)[0].lower().replace("_", "-")] = line.replace(" ", "")
    return names


def requirements(name: str) -> dict[str, str]:
    return requirement_names((ROOT / name).read_text().splitlines())


def test_pyproject_dependencies_are_requirements_txt_and_matplotlib_is_only_an_extra():
    assert requirement_names(PYPROJECT["project"]["dependencies"]) == requirements("requirements.txt")
    assert "matplotlib" not in requirements("requirements.txt")
    assert requirement_names(PYPROJECT["project"]["optional-dependencies"]["plot"]) == {"matplotlib": "matplotlib>=3.9"}
    assert {"matplotlib", "ruff", "pytest"} <= set(requirements("requirements-dev.txt"))


def third_party_imports(paths) -> dict[str, set[str]]:
    local = {p.stem for p in ROOT.iterdir()} | {p.stem for p in (ROOT / "policy").glob("*.py")}
    found: dict[str, set[str]] = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in local and top != "__future__":
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def declared(modules: dict[str, set[str]], allowed: set[str]) -> list[str]:
    distributions = metadata.packages_distributions()
    return [f"{module} ({', '.join(sorted(where))}): from {distributions.get(module)}, not declared"
            for module, where in sorted(modules.items())
            if not {d.lower().replace("_", "-") for d in distributions.get(module, [module])} & allowed]


def test_every_third_party_import_is_declared():
    runtime = set(requirements("requirements.txt")) | {"matplotlib"}  # the plot extra, imported lazily
    program = [ROOT / "__main__.py", *ROOT.glob("*.py"), *(ROOT / "ops").rglob("*.py"), *(ROOT / "components").rglob("*.py")]
    assert declared(third_party_imports(set(program)), runtime) == []
    dev = runtime | set(requirements("requirements-dev.txt")) | set(requirements("policy/requirements.txt"))
    rest = [*(ROOT / "tests").rglob("*.py"), *(ROOT / "bench").rglob("*.py"), *(ROOT / "policy").glob("*.py")]
    assert declared(third_party_imports(rest), dev) == []


def test_console_scripts_are_the_commands_mains():
    scripts = PYPROJECT["project"]["scripts"]
    assert scripts == {"umami-rehearse": "ops.rehearse.__main__:main", "umami-verify": "ops.verify.__main__:main",
                       "umami-metrics": "ops.metrics.__main__:main", "umami-preview": "ops.preview.__main__:main",
                       "umami-migrate": "ops.migrate.__main__:main", "umami-drill": "ops.drill.__main__:main",
                       "umami-retention": "ops.retention.__main__:main", "umami-tenants": "ops.tenants.__main__:main"}
    for target in scripts.values():
        module, _, function = target.partition(":")
        assert callable(getattr(__import__(module, fromlist=[function]), function))


@pytest.mark.parametrize("script", ["umami-rehearse", "umami-verify", "umami-metrics", "umami-preview",
                                    "umami-migrate", "umami-drill", "umami-retention", "umami-tenants"])
def test_installed_console_scripts_run_from_any_directory(script, tmp_path):
    path = Path(sys.executable).parent / script
    if not path.exists():
        pytest.skip(f"{script} not installed (make install runs pip install -e .)")
    version = subprocess.run([str(path), "--version"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert (version.returncode, version.stdout.strip()) == (0, f"{script} {cli.version()}"), version.stderr
    usage = subprocess.run([str(path), "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert usage.returncode == 0 and usage.stdout.startswith(f"usage: {script}") and "\nexample:\n" in usage.stdout
