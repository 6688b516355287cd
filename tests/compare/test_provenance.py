"""abrnet.compare.provenance: the one definition of the commit and machine details
(compare.json and the benchmarks both use it)."""

import os

import torch

from abrnet.compare.provenance import cpu_model, git_commit, machine_info


def test_machine_info():
    info = machine_info("cpu")
    assert info["cpu"] == cpu_model() and cpu_model().strip()
    assert info["cpu_count"] == os.cpu_count() and info["torch"] == torch.__version__
    assert info["torch_threads"] == torch.get_num_threads() and info["device"] == "cpu"
    assert machine_info(threads=1)["torch_threads"] == 1
    assert machine_info()["device"] == ("cuda" if torch.cuda.is_available() else "cpu")


def test_git_commit_shape():
    commit = git_commit()
    assert set(commit) == {"id", "dirty"}
    assert commit["id"] is None or len(commit["id"]) == 40
