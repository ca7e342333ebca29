"""The ``assay`` command line (SPEC.md §2). Thin: parses arguments, calls ``runs``, maps errors.

Exit codes: 0 success; 2 bad input (message names file, field, expectation; no traceback);
3 a finding at or above ``--fail-on``; 1 anything else.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from pathlib import Path
from typing import Annotated

import typer

from service.errors import AssayError, InputError

app = typer.Typer(
    name="assay",
    help="Model-risk and fairness audits for financial AI.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

SEVERITIES = ("info", "low", "medium", "high", "critical")
REPO_ROOT = Path(__file__).resolve().parents[1]


class Progress:
    """Progress lines on stderr with elapsed seconds (quiet when ``--quiet``)."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.t0 = time.perf_counter()

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(f"[assay {time.perf_counter() - self.t0:6.1f}s] {message}", file=sys.stderr, flush=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(code)


def _run_audit_command(
    spec_path: Path,
    out: Path,
    *,
    fail_on: str | None,
    allow_pickle: bool,
    seed: int | None,
    oot_after: str | None,
    quiet: bool,
) -> None:
    from service.config import load_spec
    from service.findings import counts_by_severity, worst_at_or_above
    from service.runs import run_audit

    progress = Progress(quiet)
    spec = load_spec(spec_path)
    if seed is not None:
        spec.seed = seed
    outcome = run_audit(spec, out, allow_pickle=allow_pickle, progress=progress, oot_after=oot_after)
    counts = counts_by_severity(outcome.result.findings)
    summary = ", ".join(f"{v} {k}" for k, v in counts.items() if v) or "none"
    print(f"findings: {summary}")
    for name, path in outcome.files.items():
        print(f"wrote {name}: {path}")
    if outcome.result.not_run:
        print("not run: " + "; ".join(f"{k} ({v})" for k, v in outcome.result.not_run.items()))
    if fail_on and worst_at_or_above(outcome.result.findings, fail_on):
        print(f"failing: a finding at or above '{fail_on}' exists (--fail-on)", file=sys.stderr)
        raise typer.Exit(3)


@app.command()
def audit(
    spec: Annotated[Path, typer.Argument(help="Audit spec (YAML or JSON); paths inside are relative to it.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory for audit.json and report.pdf.")],
    fail_on: Annotated[
        str | None, typer.Option(help="Exit 3 when a finding at or above this severity exists.")
    ] = None,
    allow_pickle: Annotated[
        bool,
        typer.Option("--allow-pickle", help="Allow a pickle/joblib model (executes code: own files only)."),
    ] = False,
    seed: Annotated[int | None, typer.Option(help="Override the spec's seed.")] = None,
    oot_after: Annotated[
        str | None, typer.Option("--oot-after", help="Rows dated after DATE form the out-of-time sample.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines on stderr.")] = False,
) -> None:
    """Run the audit described by SPEC; write OUT/audit.json (and OUT/report.pdf)."""
    if fail_on is not None and fail_on not in SEVERITIES:
        raise fail(f"--fail-on {fail_on!r} is not a severity. Expected one of: {', '.join(SEVERITIES)}.")
    _run_audit_command(
        spec, out, fail_on=fail_on, allow_pickle=allow_pickle, seed=seed, oot_after=oot_after, quiet=quiet
    )


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")] = Path("assay-demo"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """A full audit of the bundled German-credit data (UCI Statlog) with a logistic-regression model."""
    spec = REPO_ROOT / "fixtures" / "german_credit" / "audit.yaml"
    if not spec.exists():
        raise fail(
            f"{spec}: the bundled demo fixture is missing. Expected a checkout of the Assay repository.", 1
        )
    _run_audit_command(spec, out, fail_on=None, allow_pickle=False, seed=None, oot_after=None, quiet=quiet)


# Further commands register themselves here (one line each): reasons, monitor, serve, keys.
_COMMAND_MODULES: list[str] = [
    "service.cli_server",
    "service.cli_report",
    "service.cli_monitor",
    "service.cli_reasons",
]


def _register_commands() -> None:
    import importlib

    for mod in _COMMAND_MODULES:
        importlib.import_module(mod).register(app)


def _is_usage_error(exc: Exception) -> bool:
    """Click usage errors (typer vendors its own click in recent versions, so match by class name)."""
    return any(c.__name__ == "ClickException" for c in type(exc).__mro__) and hasattr(exc, "show")


def main() -> None:
    """Console-script entry point: map errors to exit codes and one-paragraph messages."""
    _register_commands()
    try:
        rc = app(standalone_mode=False)  # click returns the exit code of typer.Exit here
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except AssayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        if _is_usage_error(exc):
            exc.show(file=sys.stderr)  # type: ignore[attr-defined]
            sys.exit(2)
        if os.environ.get("ASSAY_DEBUG"):
            traceback.print_exc()
        print(
            f"internal error: {type(exc).__name__}: {exc}. This is a bug in Assay; "
            "re-run with ASSAY_DEBUG=1 for a traceback and report it.",
            file=sys.stderr,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
