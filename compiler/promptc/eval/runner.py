"""Running every variant of a spec: build it into ``REPORT_DIR/variants/NAME`` and answer it
through :func:`promptc.run.orchestrate.run_build` (same response cache: a rerun costs nothing,
an interrupted eval resumes where it stopped)."""

from __future__ import annotations

import dataclasses
import json
import time
import urllib.error
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptc import ir
from promptc.build import build
from promptc.errors import BackendError, Location, SpecWarning, UsageError
from promptc.eval.folder import VARIANTS_DIR, check_report_dir
from promptc.eval.results import TIMING_FILE
from promptc.plan.variants import Variant, compile_each
from promptc.render.output_budget import budget_warning
from promptc.replies import ReplyTooLarge, check_base_url, urlopen
from promptc.run.options import RunOptions
from promptc.run.orchestrate import run_build
from promptc.run.outputs import OUTPUTS_FILE, OutputsFile, outputs_lock, read_outputs_file
from promptc.run.repair import STAND_IN
from promptc.run.result import RunResult
from promptc.spec.lower import compile_spec
from promptc.text import public_url, write_atomic

if TYPE_CHECKING:
    from promptc.run.progress import Events

#: Seconds the endpoint has to answer eval's first question before anything is sent.
ENDPOINT_TIMEOUT = 5.0


def _refuse_links(out_dir: Path, folder: Path) -> None:
    """Refuses a variant folder reached through a link planted in ``out_dir`` (``variants``,
    ``variants/NAME``): eval writes only inside the folder it was given.

    Raises:
        UsageError: ``eval-link``, naming the link.
    """
    for place in (out_dir / VARIANTS_DIR, folder):
        if place.is_symlink():
            raise UsageError(
                f"refusing to write through {place}, a symbolic link: eval writes only "
                f"inside {out_dir}",
                location=Location(str(place)),
                hint="choose another -o folder, or remove the link",
                code="eval-link",
            )


def _set_repairs_aside(folder: Path) -> None:
    """Moves the repair answers an earlier ``eval --repair N`` left in a variant's folder to
    ``outputs.replaced.jsonl``: with repair off, the variant is scored on its own requests'
    answers alone (a repair is another request shape), as in a fresh folder."""
    path = folder / OUTPUTS_FILE
    if not path.is_file():
        return
    with outputs_lock(path):
        found = read_outputs_file(path)
        repairs = [
            rid
            for rid, answer in found.answers.items()
            if isinstance(answer.get("repair"), dict)
            and answer["repair"].get("attempt") != STAND_IN
        ]
        if repairs:
            OutputsFile(path, lambda _: None).tidy(found, drop=repairs)


def check_endpoint(base_url: str, timeout: float = ENDPOINT_TIMEOUT) -> None:
    """Asks the endpoint for its models once: any HTTP answer (even 401 or 404) means a server
    is there; no answer is one clear error within ``timeout`` seconds, before a variant is
    built or a request sent (rather than every request failing after its retries).

    Raises:
        BackendError: Nothing answers at ``base_url``.
    """
    check_base_url(base_url)
    url = base_url.rstrip("/") + "/models"
    try:
        with urlopen(url, timeout=timeout):
            return
    except (urllib.error.HTTPError, ReplyTooLarge):
        return  # a server answered: whatever it thinks of the request, it is there
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise BackendError(
            f"nothing answers at {public_url(base_url)} ({reason}): no request was sent and no "
            "report written",
            location=Location("<command line>"),
            path=("--base-url",),
            hint="start the server or fix --base-url; --local answers with the embedded model",
            code="endpoint-unreachable",
        ) from None


def compile_variant(
    spec: str, variant: Variant, data: str | None = None, limit: int | None = None
) -> ir.Task:
    """The task of one variant, its items cut to the first ``limit``."""
    overrides: dict[tuple[str, ...], object] = dict(variant.overrides())
    if data is not None:
        overrides[("data", "path")] = data
    task = compile_spec(spec, overrides=overrides)
    if limit is not None:
        task = dataclasses.replace(task, items=task.items[:limit])
    return task


def run_variants(
    spec: str,
    variants: Sequence[Variant],
    out_dir: Path,
    *,
    run_options: dict[str, Any],
    data: str | None = None,
    limit: int | None = None,
    on_variant: Callable[[Variant, int], None] | None = None,
    progress: Events | Callable[[str], None] | None = None,
    warn: Callable[[SpecWarning], object] | None = None,
) -> list[tuple[Variant, Path, RunResult]]:
    """Builds and runs each variant; returns (variant, folder, RunResult) per variant.

    Args:
        run_options: :class:`~promptc.run.options.RunOptions` fields; ``None`` values take
            their defaults.
        warn: Told, before anything is sent, of each variant whose fixed ``model.max_tokens``
            may cut its requests off (their items would be lost to truncation).

    Raises:
        PromptcError: A variant does not compile or cannot be built; bad run options;
            ``out_dir`` holds files eval did not write (``out-not-eval``).
        BackendError: Nothing answers at ``base_url`` (before anything is built or sent).
    """
    options = {k: v for k, v in run_options.items() if v is not None}
    check_report_dir(out_dir)  # a folder of the user's files: refused before anything is built
    # Every variant compiles before anything is sent: a spec error in the last one (few-shot
    # without demos) must not come after paying for the first.
    tasks, left_out = compile_each(variants, lambda v: compile_variant(spec, v, data, limit))
    for line in left_out:
        if warn is not None:
            warn(SpecWarning(line, code="left-out"))
    for v, task in tasks:
        warning = budget_warning(task, v.name)
        if warning is not None and warn is not None:
            warn(warning)
    if options.get("base_url") is not None:
        check_endpoint(str(options["base_url"]))
    for v, _ in tasks:
        _refuse_links(out_dir, out_dir / VARIANTS_DIR / v.name)
    done = []
    for v, task in tasks:
        folder = out_dir / VARIANTS_DIR / v.name
        result = build(task, folder)
        if not options.get("repair"):
            _set_repairs_aside(folder)
        if on_variant is not None:
            on_variant(v, len(result.requests))
        started = time.perf_counter()
        run = run_build(folder, RunOptions(parse=True, **options), progress=progress)
        seconds = time.perf_counter() - started
        if run.sent:
            # Only a run that sent requests measured the model: a rerun from the cache keeps
            # the first timing, so that identical results give an identical report.
            timing = {"seconds": round(seconds, 3), "sent": run.sent}
            write_atomic(folder / TIMING_FILE, [json.dumps(timing, sort_keys=True)])
        done.append((v, folder, run))
    return done
