"""``abrnet codes``, ``abrnet search`` and ``abrnet retrieval`` as subprocesses, on a tiny
run, checked against the library computed in-test."""

import json

import numpy as np
import pytest
import torch

from clitools import QUICK, abrnet, assert_one_line_error


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A digits run (MLP 64-256-128-10, steps '2' and '4') with a ReLU baseline."""
    out = tmp_path_factory.mktemp("runs") / "digits"
    abrnet("train", "--out", out, "--baseline", *QUICK)
    return out


@pytest.fixture(scope="module")
def loaded(tiny_run):
    from abrnet.train.run import load_run

    return load_run(tiny_run)


def hooked(model, name, ds, output=True):
    """``model``'s module ``name`` over all of ``ds`` (output, or input), flattened per item."""
    seen = []
    hook = model.get_submodule(name).register_forward_hook(
        lambda m, i, y: seen.append((y if output else i[0]).reshape(len(y), -1))
    )
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    with torch.no_grad():
        model.eval()(x)
    hook.remove()
    return torch.cat(seen).numpy()


def labels_of(ds):
    return np.array([int(ds[i][1]) for i in range(len(ds))])


@pytest.fixture(scope="module")
def train_index(tiny_run, tmp_path_factory):
    """Codes of the training split with a flat index over them, and test codes to query with."""
    d = tmp_path_factory.mktemp("codes")
    made = abrnet("codes", tiny_run, "--split", "train", "-o", d / "train.npz", "--index", d / "train.faiss")
    abrnet("codes", tiny_run, "--split", "test", "-o", d / "test.npz")
    return d, made


def test_codes_are_the_deployed_step_outputs(tiny_run, loaded, train_index):
    from abrnet.codes.packing import load_codes, unpack

    d, made = train_index
    train, test = loaded.datasets()
    for split, ds in (("train", train), ("test", test)):
        packed, labels, dim, meta = load_codes(d / f"{split}.npz")
        steps = hooked(loaded.deployed, "4", ds)  # the last hidden layer: the default
        assert set(np.unique(steps)) <= {0.0, 1.0}
        assert dim == 128 and packed.dtype == np.uint8 and packed.shape == (len(ds), 128 // 8)
        assert (unpack(packed, dim) == steps).all()
        assert (labels == labels_of(ds)).all()
        assert meta["layer"] == "4" and meta["split"] == split and meta["padding_bits"] == 0
    out = made.stdout
    assert "d = 128 bits -> 16 bytes per item packed; no padding" in out
    assert "packed 16, float32 512 (32.0x less)" in out
    assert "300 codes and labels" in out and (d / "train.faiss.labels.npz").exists()

    # another layer, a limit
    run = abrnet("codes", tiny_run, "--layer", "2", "--limit", "50", "-o", d / "l2.npz")
    packed, labels, dim, meta = load_codes(d / "l2.npz")
    assert dim == 256 and packed.shape == (50, 32) and meta["layer"] == "2"
    assert (unpack(packed, dim) == hooked(loaded.deployed, "2", train)[:50]).all()
    assert (labels == labels_of(train)[:50]).all()
    assert "packed 32, float32 1024" in run.stdout


def brute_force(db_packed, q_packed):
    """All Hamming distances, by numpy: unpack and count differing bits."""
    db, q = np.unpackbits(db_packed, axis=1), np.unpackbits(q_packed, axis=1)
    return (q[:, None, :] != db[None, :, :]).sum(2)


def check_hits(result, dist_row, db_labels, k):
    hits = result["hits"]
    assert len(hits) == k
    distances = [h["distance"] for h in hits]
    assert distances == sorted(dist_row)[:k]  # the k smallest, rank by rank
    assert [dist_row[h["id"]] for h in hits] == distances  # and each id is at that distance
    assert len({h["id"] for h in hits}) == k
    assert [h["label"] for h in hits] == [int(db_labels[h["id"]]) for h in hits]


def test_search_equals_brute_force(tiny_run, train_index):
    from abrnet.codes.packing import load_codes

    d, _ = train_index
    db, q = load_codes(d / "train.npz"), load_codes(d / "test.npz")
    dist = brute_force(db.packed, q.packed)
    rows = [0, 7, 123, 299]
    res = json.loads(
        abrnet(
            "search",
            d / "train.faiss",
            "--codes",
            d / "test.npz",
            "--query-index",
            ",".join(map(str, rows)),
            "-k",
            10,
            "--json",
        ).stdout  # fmt: skip
    )
    assert res["bits"] == 128 and res["k"] == 10
    assert [r["query"] for r in res["results"]] == rows
    for r in res["results"]:
        assert r["label"] == int(q.labels[r["query"]])
        check_hits(r, dist[r["query"]], db.labels, 10)

    # raw inputs through the model: the same queries, the same distances
    raw = json.loads(abrnet("search", d / "train.faiss", "--run", tiny_run, "--items", "0,7", "-k", 10,
                            "--json").stdout)  # fmt: skip
    for a, b in zip(raw["results"], res["results"][:2]):
        assert a["query"] == b["query"] and a["label"] == b["label"]
        assert [h["distance"] for h in a["hits"]] == [h["distance"] for h in b["hits"]]

    text = abrnet("search", d / "train.faiss", "--codes", d / "test.npz", "--query-index", "7", "-k", 3).stdout
    assert "query 7: label" in text and "hamming" in text and len(text.strip().splitlines()) == 2 + 1 + 3


def test_retrieval_matches_the_library(tiny_run, loaded, tmp_path):
    from abrnet.codes.packing import pack
    from abrnet.codes.retrieval import evaluate_float_retrieval, evaluate_retrieval

    run = abrnet("retrieval", tiny_run, "--k", "5,50", "--limit-db", 200, "--json", tmp_path / "r.json",
                 "--speed-queries", 50, "--repeats", 1)  # fmt: skip
    res = json.loads((tmp_path / "r.json").read_text())
    assert not list(tiny_run.glob("retrieval*.json"))  # written only where --json asks
    for key in ("schema", "layer", "bits", "queries", "database", "binary", "float", "relu", "ratio",
                "bytes_per_item", "speed"):  # fmt: skip
        assert key in res, key
    assert "goals" not in res and "goal" not in run.stdout  # project goals live in docs/deploy.md
    assert f"wrote {tmp_path / 'r.json'}" in run.stdout
    assert res["layer"] == "4" and res["bits"] == 128 and res["database"] == 200 and res["queries"] == 300
    for rep in ("binary", "float", "relu"):
        assert {"mAP", "mAP@5", "P@5", "mAP@50", "P@50"} <= set(res[rep])
    assert res["bytes_per_item"] == {"packed": 16.0, "float32": 512.0, "ratio": 32.0, "padding_bits": 0}
    assert res["speed"]["binary_qps"] > 0 and res["speed"]["float_qps"] > 0

    train, test = loaded.datasets()
    db_ds = torch.utils.data.Subset(train, range(200))
    ks = (5, 50)
    dbl, ql = labels_of(db_ds), labels_of(test)
    db_bits, q_bits = hooked(loaded.deployed, "4", db_ds), hooked(loaded.deployed, "4", test)
    binary = evaluate_retrieval(pack(db_bits), dbl, pack(q_bits), ql, ks)
    pre = [hooked(loaded.deployed, "4", ds, output=False) for ds in (db_ds, test)]
    floats = evaluate_float_retrieval(pre[0], dbl, pre[1], ql, ks)
    relu = [hooked(loaded.baseline, "4", ds) for ds in (db_ds, test)]
    relus = evaluate_float_retrieval(relu[0], dbl, relu[1], ql, ks)
    for rep, want in (("binary", binary), ("float", floats), ("relu", relus)):
        for key in ("mAP", "mAP@5", "P@5", "mAP@50", "P@50"):
            assert res[rep][key] == pytest.approx(want[key], abs=1e-6), (rep, key)
    assert res["ratio"]["binary_vs_float"] == pytest.approx(binary["mAP"] / floats["mAP"], abs=1e-6)
    assert "binary / float mAP" in run.stdout and "q/s" in run.stdout

    # the same protocol from Python, on the loaded run
    from abrnet.codes import run_retrieval

    lib = run_retrieval(loaded, ks=ks, limit_db=200, speed_queries=50, repeats=1)
    for rep in ("binary", "float", "relu"):
        for key in ("mAP", "mAP@5", "P@5", "mAP@50", "P@50"):
            assert lib[rep][key] == pytest.approx(res[rep][key], abs=1e-6), (rep, key)
    assert lib["bytes_per_item"] == res["bytes_per_item"] and lib["relu_note"] == res["relu_note"]
    assert not list(tiny_run.glob("retrieval*.json"))


def test_retrieval_without_json_writes_nothing(tiny_run, tmp_path):
    run = abrnet("retrieval", tiny_run, "--k", "5", "--limit-db", 50, "--limit-queries", 20, "--no-baseline",
                 "--speed-queries", 10, "--repeats", 1)  # fmt: skip
    assert not list(tiny_run.glob("retrieval*.json")) and "wrote" not in run.stdout
    assert "goal" not in run.stdout and "skipped" in run.stdout


def test_bad_inputs_give_one_line_errors(tiny_run, train_index, tmp_path):
    d, _ = train_index
    assert_one_line_error(abrnet("codes", tiny_run, "--layer", "3", "-o", tmp_path / "c.npz", check=False),
                          "'3' is not a step layer", "2, 4")  # fmt: skip
    assert_one_line_error(abrnet("retrieval", tiny_run, "--layer", "nope", check=False), "'nope'")
    assert_one_line_error(abrnet("search", tmp_path / "missing.faiss", "--codes", d / "test.npz", check=False),
                          "no index file")  # fmt: skip
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04 not really a zip")
    assert_one_line_error(abrnet("search", d / "train.faiss", "--codes", tmp_path / "corrupt.npz", check=False),
                          "corrupt.npz")  # fmt: skip
    (tmp_path / "corrupt.faiss").write_bytes(b"\x00" * 64)
    assert_one_line_error(abrnet("search", tmp_path / "corrupt.faiss", "--codes", d / "test.npz", check=False),
                          "not a faiss binary index")  # fmt: skip
