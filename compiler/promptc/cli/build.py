"""``promptc build``: a spec compiled into a build folder, or one stage printed."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from promptc import build as build_mod
from promptc import ir
from promptc.api import load_spec, write_build
from promptc.build.targets import NAMES as TARGET_NAMES
from promptc.build.targets import find_target
from promptc.cli.common import (
    batch_size_option,
    data_option,
    json_format_option,
    spec_argument,
    strategy_option,
    write_json,
)
from promptc.diff.stale import check_report, untracked

EMITS = ("ir", "batches", "requests")


@click.command("build")
@spec_argument
@click.option(
    "-o",
    "--out",
    "out_dir",
    # (writable is the build's to check: --check reads a folder it never writes)
    type=click.Path(file_okay=False),
    default=None,
    metavar="DIR",
    help="The build folder to write.",
)
@strategy_option
@batch_size_option
@data_option
@click.option(
    "--target",
    type=click.Choice(TARGET_NAMES),
    default="chat",
    show_default=True,
    help="requests.jsonl form: promptc's chat records, the OpenAI Batch API's, or that with "
    "each body's constraint in vLLM's structured_outputs (vllm-batch).",
)
@click.option(
    "--grammar",
    "vllm_grammar",
    type=click.Choice(("gbnf", "json-schema")),
    default=None,
    help="vllm-batch: the constraint each body carries, structured_outputs.grammar (GBNF, "
    "the default) or structured_outputs.json (JSON Schema; the model answers in JSON). "
    "openai-batch: json-schema puts each body's strict JSON Schema in response_format.",
)
@click.option(
    "--emit",
    type=click.Choice(EMITS),
    default=None,
    help="Print this stage to stdout (JSON / JSON lines) instead of writing files.",
)
@click.option(
    "--check",
    is_flag=True,
    help="Write nothing: build in memory and exit 1 naming every file of DIR that is stale.",
)
@click.option(
    "--tracked",
    is_flag=True,
    help="With --check: also fail naming each file of DIR, and each file the build reads, "
    "that git does not track (what a commit would leave out: the pre-commit hook's check).",
)
@json_format_option
def build_command(
    spec: str,
    out_dir: str | None,
    strategy: str | None,
    batch_size: int | None,
    data: str | None,
    target: str,
    vllm_grammar: str | None,
    emit: str | None,
    check: bool,
    tracked: bool,
    fmt: str,
) -> None:
    """Compile SPEC into requests, batches, answer grammars and a manifest in DIR.

    The build is deterministic: rebuilding the same spec and data gives byte-identical files.
    With --check nothing is written: exit 0 when DIR holds exactly this build, 1 naming every
    stale, missing or leftover file (and the first request that differs).
    """
    if emit is None and out_dir is None:
        raise click.UsageError("give the build folder with -o DIR, or print a stage with --emit")
    if emit is not None and out_dir is not None:
        raise click.UsageError("--emit prints a stage to stdout and writes no folder: drop -o DIR")
    if check and (emit is not None or out_dir is None):
        raise click.UsageError("--check needs the build folder to hold against: -o DIR")
    if tracked and not check:
        raise click.UsageError("--tracked is a part of --check: give both")
    if vllm_grammar is not None and not find_target(target).grammars:
        raise click.UsageError(
            f"--grammar chooses the constraint of --target vllm-batch bodies; --target {target} "
            "carries none (promptc run --grammar chooses how a run sends it)"
        )
    grammar = vllm_grammar  # the target's default when None
    task = load_spec(spec, strategy=strategy, batch_size=batch_size, data=data)
    out = sys.stdout
    if emit == "ir":
        out.write(build_mod.ir_json(task))
        return
    if emit is not None:
        name = build_mod.REQUESTS_FILE if emit == "requests" else build_mod.BATCHES_FILE
        out.writelines(build_mod.iter_lines(task, name, target=target, vllm_grammar=grammar))
        return
    assert out_dir is not None
    if check:
        assembled = build_mod.assemble(task, target=target, vllm_grammar=grammar)
        given = [
            *(("--strategy", strategy) if strategy is not None else ()),
            *(("--batch-size", str(batch_size)) if batch_size is not None else ()),
            *(("--data", data) if data is not None else ()),
            *(("--target", target) if target != "chat" else ()),
            *(("--grammar", vllm_grammar) if vllm_grammar is not None else ()),
        ]
        status, lines = check_report(assembled, out_dir, spec, given)
        if tracked:
            left_out = untracked(_files_of(task, assembled, Path(out_dir)), Path(out_dir))
            status, lines = (1 if left_out else status), [*left_out, *lines]
        if fmt == "json":
            write_json({"out_dir": out_dir, "current": status == 0, "lines": lines})
        else:
            (out if status == 0 else sys.stderr).write("".join(line + "\n" for line in lines))
        sys.exit(status)
    built = write_build(task, out_dir, target=target, grammar=grammar)
    if fmt == "json":
        write_json(
            {
                "out_dir": out_dir,
                "name": task.name,
                "strategy": task.strategy.kind.name,
                "target": target,
                "requests": built.manifest["counts"]["requests"],
                "items": len(task.items),
                "files": list(built.files),
                "summary": built.summary(),
            }
        )
        return
    click.echo(built.summary())


def _files_of(task: ir.Task, assembled: build_mod.BuildResult, out: Path) -> list[Path]:
    """The files of a build (in ``out``) and the files it reads: the spec, those it
    extends, its data and the templates it renders with (a template of promptc's aside)."""
    reads = [task.spec.path, *(f.path for f in task.extends)]
    reads += [task.data.resolved] if task.data is not None else []
    listed = assembled.manifest.get("templates")
    for t in listed if isinstance(listed, list) else ():
        if isinstance(t, dict) and isinstance(t.get("path"), str):
            reads.append(str(Path(task.spec_dir) / t["path"]))
    return [out / name for name in sorted(assembled.files)] + [Path(p) for p in reads if p]
