"""A spec as it was at a git revision, read with git itself.

:func:`checkout_spec` writes into a temporary folder the files a spec needs, as they were at
a revision: the spec, every spec it ``extends``, the data file, its own templates and the
templates they include or extend. Each file is read with ``git cat-file --filters REV:path``
(so nothing of the work tree, the index or ``HEAD`` is touched; the filters a checkout applies
are applied, so a Git LFS pointer reads as the file it stands for, when git-lfs is
installed, and line ends are what a checkout writes), and the
files are laid out under the temporary folder as they lie in the repository, so the spec's
relative paths and the project folder (where ``extends`` may reach) mean what they meant.

The needed files are found the way the compiler finds them: the ``extends`` chain from each
spec's YAML, the data and template paths from the merged spec
(:func:`promptc.spec.load.load_spec`), and the templates a template names with
``{% include %}``, ``{% import %}`` or ``{% extends %}`` from its Jinja syntax tree. A template
that names another by an expression (which cannot be known before rendering) brings in every
file under the spec folders instead.

The shipped templates (``promptc/batch.j2`` …) are those of the revision too when the
repository holds them (promptc's own repository, or a project that vendors promptc): the old
spec is rendered as that revision rendered it. Elsewhere they are the installed ones, and
:attr:`Checkout.shipped` says so.

Errors found while compiling the old spec are reported at ``REV:path:line:col``.
"""

from __future__ import annotations

import importlib.util
import os
import posixpath
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from promptc.build import assemble
from promptc.diff.views import BuildView, view_of_result
from promptc.errors import Location, PromptcError, PromptcErrors, UsageError, flatten
from promptc.render.checks import raise_template_errors
from promptc.render.environment import SHIPPED_TEXTS
from promptc.spec.load import MAX_EXTENDS, SpecDocument, load_spec, project_root
from promptc.spec.lower import compile_spec
from promptc.text import gc_paused

#: Most files brought in for one spec; a fallback to "every file in the spec folders" past it
#: would copy a whole repository.
MAX_FILES = 10_000
#: Seconds a git command may take.
GIT_TIMEOUT = 60


def _usage(message: str, where: str, code: str, hint: str | None = None) -> UsageError:
    return UsageError(message, location=Location(where), hint=hint, code=code)


def git(args: list[str], cwd: str | os.PathLike[str]) -> subprocess.CompletedProcess[bytes]:
    """Runs ``git ARGS`` in ``cwd`` and returns its result (output as bytes).

    Raises:
        UsageError: git is not installed (``no-git``) or did not answer in time.
    """
    try:
        return subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            check=False,
            timeout=GIT_TIMEOUT,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"},
        )
    except FileNotFoundError:
        raise _usage("git is not installed", str(cwd), "no-git", "install git") from None
    except subprocess.TimeoutExpired:
        raise _usage(f"git {args[0]} took over {GIT_TIMEOUT}s", str(cwd), "git-timeout") from None


@dataclass(frozen=True)
class Repository:
    """Where a spec sits in its git repository, and the commit a revision names.

    Attributes:
        top: The repository's top folder (absolute).
        commit: The commit's full hash.
        rev: The revision as the user wrote it.
    """

    top: Path
    commit: str
    rev: str


def resolve(spec: str, rev: str) -> tuple[Repository, str]:
    """The repository of ``spec``, the commit ``rev`` names, and the spec's path in the tree.

    Raises:
        UsageError: ``spec`` is not in a git work tree (``not-a-repository``), ``rev`` names
            no commit (``unknown-revision``) or the spec did not exist at it (``not-at-revision``).
    """
    path = Path(spec).absolute()
    folder = path.parent
    if not folder.is_dir():
        raise _usage(f"no such folder {str(folder)!r}", spec, "no-spec")
    proc = git(["rev-parse", "--show-toplevel"], folder)
    if proc.returncode != 0:
        raise _usage(
            f"{spec} is not inside a git repository",
            spec,
            "not-a-repository",
            "diff --against needs the spec's history; compare two build folders instead",
        )
    top = Path(proc.stdout.decode("utf-8", "replace").strip()).resolve()
    if rev.startswith("-") or not rev.strip():
        raise _usage(f"unknown revision {rev!r}", spec, "unknown-revision")
    proc = git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"], top)
    if proc.returncode != 0:
        shallow = git(["rev-parse", "--is-shallow-repository"], top).stdout.strip() == b"true"
        raise _usage(
            f"unknown revision {rev!r}: git knows no commit by that name"
            + (" (this clone is shallow: it holds only the latest commits)" if shallow else ""),
            spec,
            "unknown-revision",
            "fetch more history (git fetch --deepen=N, or a CI checkout's fetch-depth: 0)"
            if shallow
            else "give a commit, branch or tag, e.g. HEAD~1 or main",
        )
    commit = proc.stdout.decode("ascii", "replace").strip()
    try:
        # The folder resolved, not the spec itself: a spec that is a link is read at the
        # revision as the file it named then (a link re-pointed since names another now).
        rel = (path.parent.resolve() / path.name).relative_to(top).as_posix()
    except ValueError:
        raise _usage(
            f"{spec} is outside the repository at {top}", spec, "outside-repository"
        ) from None
    repo = Repository(top, commit, rev)
    kind = git(["cat-file", "-t", f"{commit}:{rel}"], top)
    if kind.returncode != 0 or kind.stdout.strip() != b"blob":
        raise _usage(
            f"the spec did not exist at {rev}: git has no file {rel} there",
            spec,
            "not-at-revision",
            "diff against a revision that has the spec",
        )
    return repo, rel


@dataclass
class Checkout:
    """The files of a spec at a revision, written under :attr:`root`.

    Attributes:
        repo: The repository and commit.
        root: The temporary folder standing for the repository's top folder.
        spec: The spec's copy (under ``root``).
        files: Repository paths written.
        doc: The spec read (with the specs it extends), or ``None`` when it cannot be.
        shipped: The shipped templates of the revision, by name, when the repository holds
            them; ``None``: the installed ones are used.
        shipped_folder: Their folder in the repository.
    """

    repo: Repository
    root: Path
    spec: Path
    files: set[str] = field(default_factory=set)
    doc: SpecDocument | None = None
    shipped: dict[str, str] | None = None
    shipped_folder: str = ""
    #: Files written only because a template names another by an expression.
    bulk: set[str] = field(default_factory=set)

    def read(self) -> list[str]:
        """What was read at the revision, ``REV:path`` each, sorted (the files brought in
        only because a template names another by an expression, counted); and where the
        shipped templates came from."""
        out = [self.label(f) for f in sorted(self.files - self.bulk)]
        if self.bulk:
            out.append(
                f"{len(self.bulk)} other file(s) of the spec's folders (a template names"
                " another by an expression)"
            )
        if self.shipped is None:
            out.append("shipped templates: the installed promptc's (the repository holds none)")
        else:
            out += [self.label(f"{self.shipped_folder}/{n}") for n in sorted(self.shipped)]
        return out

    def label(self, rel: str) -> str:
        """``REV:path`` of a repository path."""
        return f"{self.repo.rev}:{rel}"

    def relabel(self, error: PromptcError) -> PromptcError:
        """The error with every temporary path shown as ``REV:path``."""
        prefix = str(self.root) + os.sep
        for e in [error, *flatten([error])]:
            if e.location is not None and e.location.file.startswith(prefix):
                rel = e.location.file[len(prefix) :].replace(os.sep, "/")
                e.location = Location(self.label(rel), e.location.line, e.location.col)
            e.message = e.message.replace(prefix, f"{self.repo.rev}:")
            if e.hint:
                e.hint = e.hint.replace(prefix, f"{self.repo.rev}:")
            if e.code == "not-found" and self._in_work_tree(e):
                e.hint = (
                    f"the file is in the work tree but not committed at {self.repo.rev} "
                    "(untracked or ignored by git): diff --against reads the revision's files "
                    "from git"
                )
        if isinstance(error, PromptcErrors):
            return PromptcErrors(list(error.errors), error.omitted)
        return error

    def _in_work_tree(self, error: PromptcError) -> bool:
        """Whether the data file a ``not-found`` error names is in the work tree."""
        named = re.search(r"'([^']+)' not found", error.message)
        where = self.spec.parent.relative_to(self.root)
        return named is not None and (self.repo.top / where / named.group(1)).is_file()


def _yaml_extends(text: bytes) -> str | None:
    """The ``extends`` of a spec's text, or ``None`` (also when the text is not YAML: the
    compiler will say so, at its line)."""
    try:
        data = yaml.safe_load(text.decode("utf-8-sig"))
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError):
        return None
    ext = data.get("extends") if isinstance(data, dict) else None
    return ext if isinstance(ext, str) and ext.strip() else None


def _inside(rel: str) -> bool:
    return not (rel == ".." or rel.startswith(("../", "/")))


@contextmanager
def checkout_spec(spec: str, rev: str) -> Iterator[Checkout]:
    """The files of ``spec`` as they were at ``rev``, in a temporary folder removed afterwards.

    Raises:
        UsageError: See :func:`resolve`.
    """
    repo, rel = resolve(spec, rev)
    tmp = Path(tempfile.mkdtemp(prefix="promptc-diff-")).resolve()
    try:
        checkout = Checkout(repo, tmp, tmp / rel)
        _mark_project_root(repo, spec, tmp)
        _gather(checkout, rel)
        _shipped_at(checkout)
        yield checkout
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _shipped_at(checkout: Checkout) -> None:
    """Reads the revision's shipped templates when the installed ones lie in the repository."""
    found = importlib.util.find_spec("promptc.templates")
    places = list(found.submodule_search_locations or []) if found is not None else []
    repo = checkout.repo
    for place in places:
        try:
            folder = Path(place).resolve().relative_to(repo.top).as_posix()
        except ValueError:
            continue
        names = git(["ls-tree", "-r", "-z", "--name-only", repo.commit, "--", folder], repo.top)
        texts = {}
        for name in names.stdout.decode("utf-8", "replace").split("\0"):
            if name.endswith(".j2"):
                blob = git(["cat-file", "--filters", f"{repo.commit}:{name}"], repo.top)
                if blob.returncode == 0:
                    texts[name[len(folder) + 1 :]] = blob.stdout.decode("utf-8")
        if texts:
            checkout.shipped, checkout.shipped_folder = texts, folder
        return


def _mark_project_root(repo: Repository, spec: str, tmp: Path) -> None:
    """Marks the project folder (where ``extends`` may reach) in the temporary tree where it is
    in the work tree, so that the old spec is held to the same bound."""
    root = project_root(Path(spec).resolve().parent).resolve()
    try:
        rel = root.relative_to(repo.top)
    except ValueError:
        rel = Path()
    (tmp / rel).mkdir(parents=True, exist_ok=True)
    (tmp / rel / ".git").write_text("", encoding="utf-8")


def _write(checkout: Checkout, rel: str, mode: bytes | None = None) -> bool:
    """Writes one repository file into the checkout; ``False`` when it is not at the revision.
    ``mode``: its mode at the revision, where a listing of its folder said it already."""
    rel = posixpath.normpath(rel)
    if not _inside(rel) or rel == ".":
        return False
    if rel in checkout.files:
        return True
    if len(checkout.files) >= MAX_FILES:
        raise _usage(
            f"the spec at {checkout.repo.rev} needs over {MAX_FILES} files",
            checkout.label(rel),
            "too-many-files",
        )
    data = _contents(checkout, rel, mode)
    if data is None:
        return False
    target = checkout.root / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    checkout.files.add(rel)
    return True


#: Links followed one after another at a revision before giving up (a cycle of links).
MAX_LINKS = 8


def _contents(checkout: Checkout, rel: str, mode: bytes | None = None) -> bytes | None:
    """A file's bytes at the revision, ``None`` if it is none there (missing, a folder, a
    submodule). A link (mode 120000, whose blob is the path it names) is read as the file it
    names inside the repository, as a checkout of the revision would read it; one that leaves
    the repository, or a cycle, is refused."""
    repo = checkout.repo
    for _ in range(MAX_LINKS):
        rest = ""
        if mode is None:
            entry = git(["ls-tree", "-z", repo.commit, "--", rel], repo.top).stdout
            mode = entry.split(b" ", 1)[0]
            if not entry:  # in no folder at the revision: perhaps in a linked one (data -> shared)
                rel, rest = _linked_folder(checkout, rel)
                mode = b"120000" if rest else b""
        if mode not in (b"100644", b"100755", b"120000"):
            return None
        how = "blob" if mode == b"120000" else "--filters"  # a link's blob is the path it names
        blob = git(["cat-file", how, f"{repo.commit}:{rel}"], repo.top)
        if blob.returncode != 0:
            return None
        if mode != b"120000":
            return blob.stdout
        named = blob.stdout.decode("utf-8", "replace")
        followed = posixpath.normpath(posixpath.join(posixpath.dirname(rel), named, rest))
        if os.path.isabs(named) or not _inside(followed):
            raise _usage(
                f"{rel} is a link at {repo.rev} to {named!r}, outside the repository",
                checkout.label(rel),
                "link-outside",
            )
        rel, mode = followed, None
    raise _usage(
        f"{rel} at {repo.rev} is a chain of more than {MAX_LINKS} links",
        checkout.label(rel),
        "link-outside",
    )


def _linked_folder(checkout: Checkout, rel: str) -> tuple[str, str]:
    """The first folder of ``rel`` that is a link at the revision, and the rest of ``rel``
    under it (``("data", "task.jsonl")``); ``(rel, "")`` if none is."""
    repo = checkout.repo
    parts = rel.split("/")
    for k in range(1, len(parts)):
        folder = "/".join(parts[:k])
        entry = git(["ls-tree", "-z", repo.commit, "--", folder], repo.top).stdout
        if entry.startswith(b"120000 "):
            return folder, "/".join(parts[k:])
        if not entry.startswith(b"040000 "):
            break
    return rel, ""


def _gather(checkout: Checkout, rel: str) -> None:
    # 1. the extends chain, from each spec's own YAML
    chain = [rel]
    _write(checkout, rel)
    while len(chain) <= MAX_EXTENDS:  # as many as the loader follows
        current = chain[-1]
        body = (checkout.root / current).read_bytes() if current in checkout.files else b""
        ext = _yaml_extends(body)
        if ext is None or os.path.isabs(ext) or ext.startswith("~"):
            break
        nxt = posixpath.normpath(posixpath.join(posixpath.dirname(current), ext))
        if nxt in chain or not _inside(nxt) or not _write(checkout, nxt):
            break
        chain.append(nxt)
    folders = list(dict.fromkeys(posixpath.dirname(s) for s in chain))  # in order, once each
    # 2. data and templates, from the merged spec
    try:
        doc = checkout.doc = load_spec(checkout.spec)
    except PromptcError:
        return  # compiling will report it
    data = doc.get(("data",))
    if isinstance(data, dict) and isinstance(data.get("path"), str):
        _write_relative(checkout, doc.folder_of(("data", "path")), data["path"])
    templates = doc.get(("templates",))
    pending: list[str] = []
    if isinstance(templates, dict):
        for kind, path in templates.items():
            if isinstance(path, str):
                where = doc.folder_of(("templates", kind))
                written = _write_relative(checkout, where, path)
                if written is not None:
                    pending.append(written)
    # 3. what those templates include, import or extend
    done: set[str] = set()
    while pending:
        current = pending.pop()
        if current in done:
            continue
        done.add(current)
        names = _referenced_templates(checkout.root / current)
        if names is None:
            _write_folders(checkout, folders)
            return
        for name in names:
            if name.startswith("promptc/"):
                continue
            for folder in folders:
                candidate = posixpath.normpath(posixpath.join(folder, name))
                if _inside(candidate) and _write(checkout, candidate):
                    pending.append(candidate)
                    break


def _write_relative(checkout: Checkout, folder: Path, path: str) -> str | None:
    """Writes ``folder/path`` (``folder`` inside the checkout); its repository path, or ``None``."""
    if os.path.isabs(path) or path.startswith("~"):
        return None
    try:
        base = folder.resolve().relative_to(checkout.root).as_posix()
    except ValueError:
        return None
    rel = posixpath.normpath(posixpath.join(base, path.replace("\\", "/")))
    return rel if _write(checkout, rel) else None


def _referenced_templates(path: Path) -> list[str] | None:
    """The template names a Jinja file refers to; ``None`` if one is an expression."""
    import jinja2
    from jinja2 import meta

    try:
        text = path.read_text(encoding="utf-8")
        ast = jinja2.Environment().parse(text)
    except (OSError, UnicodeDecodeError, jinja2.TemplateSyntaxError):
        return []  # compiling will report it
    names: list[Any] = list(meta.find_referenced_templates(ast))
    if any(n is None for n in names):
        return None
    return [str(n) for n in names]


def _write_folders(checkout: Checkout, folders: list[str]) -> None:
    """Writes every file under the spec folders (a template names another by an expression).
    A link among them that leaves the repository is left out, not refused: the build may
    never open it (one that does finds no such template, as a checkout's build would)."""
    args = ["ls-tree", "-r", "-z", checkout.repo.commit, "--"]
    proc = git(args + [f or "." for f in folders], checkout.repo.top)
    for entry in proc.stdout.split(b"\0"):
        meta, _, path = entry.partition(b"\t")
        name = path.decode("utf-8", "replace")
        if not name or name in checkout.files:
            continue
        try:
            if _write(checkout, name, meta.split(b" ", 1)[0]):
                checkout.bulk.add(posixpath.normpath(name))
        except UsageError as e:
            if e.code != "link-outside":
                raise


def view_at(
    spec: str,
    rev: str,
    *,
    overrides: Mapping[tuple[str, ...], object] | None = None,
    target: str = "chat",
) -> tuple[BuildView, list[str]]:
    """The build ``spec`` made at ``rev``, in memory, as the diff sees it (labelled
    ``REV:path``), and what was read at the revision (:meth:`Checkout.read`). The view is made
    while the revision's files are there: the task reads its data file as it goes.

    Args:
        spec: The spec's path in the work tree (it need not exist there any more).
        rev: A git revision.
        overrides: Command-line values, as for :func:`promptc.spec.lower.compile_spec`.
        target: The build target.

    Raises:
        UsageError: See :func:`resolve`.
        PromptcError: The old spec does not compile; locations read ``REV:path:line:col``.
    """
    with checkout_spec(spec, rev) as checkout:
        label = checkout.label(checkout.spec.relative_to(checkout.root).as_posix())
        wanted = dict(overrides or {})
        cache = _cache_dir(checkout, spec)
        if cache is not None and ("strategy", "selection", "cache_dir") not in wanted:
            wanted[("strategy", "selection", "cache_dir")] = cache
        shipped = SHIPPED_TEXTS.set(checkout.shipped)
        try:
            with gc_paused():
                task = compile_spec(str(checkout.spec), overrides=wanted or None)
                raise_template_errors(task)
                view = view_of_result(assemble(task, target=target), label, task)
                return view, checkout.read()
        except PromptcError as e:
            raise checkout.relabel(e) from None
        finally:
            SHIPPED_TEXTS.reset(shipped)


def _cache_dir(checkout: Checkout, spec: str) -> str | None:
    """The old spec's embedding cache folder, moved from the temporary tree to the work tree
    (so that the old build reuses the embeddings the new one computes, and leaves none behind
    in a folder about to be removed), when the work tree has that folder inside the spec's
    folder; else ``None`` (the temporary tree's)."""
    doc = checkout.doc
    if doc is None:
        return None
    p = ("strategy", "selection", "cache_dir")
    rel = doc.get(p)
    if not isinstance(rel, str) or not rel or os.path.isabs(rel) or rel.startswith("~"):
        return None
    try:
        where = doc.folder_of(p).resolve().relative_to(checkout.root)
    except ValueError:
        return None
    # Only a cache folder the work tree already has, inside the spec's folder there: the work
    # tree is never written to otherwise, and never through a link out of it.
    folder = (checkout.repo.top / where).resolve()
    target = (folder / rel).resolve()
    if not target.is_dir() or not target.is_relative_to(folder):
        return None
    return str(target)
