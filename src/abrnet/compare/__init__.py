"""Head-to-head comparison of the ways to get binary hidden representations.

:func:`run_compare` trains every (scope, method, seed) with one recipe and one budget,
through the same :func:`abrnet.train.pipeline.train_run` as ``abrnet train``; only ``method``,
``seed`` and ``binarize`` differ between runs (and ``schedule`` for the ``abr-paper``
row). Accuracy is always the deployed network's (every chosen activation replaced by its
step, exactly 0/1), next to the training form's. The rows are those of
:data:`abrnet.compare.plan.ROWS`: the methods of :data:`abrnet.rivals.METHODS`, and
``abr-paper``, ABR under the paper's fixed two-phase schedule; the scopes are those of
:data:`abrnet.train.config.SCOPES`.

Modules, one job each: :mod:`.plan` (inputs checked, one config per run),
:mod:`.configs` (config matching for reuse and resume), :mod:`.sweep` (train or reuse
each run, in this process or ``jobs`` worker processes), :mod:`.results` (per-run
rows and statistics over seeds), :mod:`.markdown` (``compare.md``) and
:mod:`.provenance` (git commit and machine), :mod:`.merge` (one comparison from
several run in parts).

Layout of ``OUT``::

    compare.json                  results, schema below
    compare.md                    the same as Markdown tables, one per scope
    <scope>/<method>-seed<N>/     one run directory each (see abrnet.train.run); relu,
                                  which has no binary layer, is trained once, in the
                                  first scope's folder, and stands for every scope

The comparison is resumable: a run whose ``report.json`` exists is reused, not
retrained; a run with a ``config.json`` but no report (the job was killed) resumes
from its last checkpoint. Either must have been made with the same config, else a
:class:`~abrnet.errors.UserError` says so; so does a reused report whose
``deployed_binary`` check counted fewer layers than the run has binary layers
(written by an older abrnet): delete that run directory to retrain it. Every run
directory is checked before anything is trained.

``compare.json`` (schema ``abrnet-compare-2``)::

    schema, created (ISO 8601 local time), command (the command line, or null)
    recipe, methods [..], binarize [..], seeds [..]
    jobs          runs trained at once (1: one after another in one process; more:
                  each in a worker process of its own, with one torch thread)
    config        the resolved config shared by all runs; method, seed and binarize
                  are left out (they vary)
    commit        {"id": git HEAD or null, "dirty": bool or null}
    machine       {"platform", "python", "torch", "cpu", "cpu_count", "torch_threads"
                   (per run: 1 when jobs > 1), "cuda": [device names], "device"}
    wall_time_s   total wall time of the runs, from their reports (a reused run counts
                  its own; a resumed run only the part after the resume; a relu run
                  shared by several scopes once)
    elapsed_s     wall time of this invocation (small when every run was reused)
    results       one entry per (binarize, method), in command order:
      binarize, method
      runs        one per seed:
        seed, run_dir (relative to OUT), reused (bool: report.json already existed)
        train_form            test accuracy of the training form
        deployed              test accuracy of the deployed network; null for relu
                              (no binary layer: there is nothing to deploy)
        binary_layers         number of binary activations (0 for relu)
        binary_share          share of the training form's outputs, over the binary
                              layers and the test set, that are exactly 0 or 1
                              (sum of zero + one, weighted by each layer's count);
                              null for relu
        deployed_binary_share share of the deployed network's outputs at those layers
                              that are exactly 0/1: 1.0 by construction (each is a
                              step); measured on the test set by the run's report
                              (its deployed_binary), not assumed
        non_binary_outputs, outputs_checked   the counts behind it
        wall_time_s           the run's wall time
      aggregate   over seeds: n, and for train_form, deployed, binary_share,
                  deployed_binary_share: {"mean", "std", "min", "max"} (std is the
                  sample std, ddof = 1; null when n = 1; the whole entry null when
                  the value is null, as for relu's deployed accuracy);
                  wall_time_s: {"total", "mean"}; all_binary: every run's deployed
                  network had 0 non-binary outputs (null for relu)

A merged comparison (``abrnet compare --merge``, :mod:`.merge`) has the same keys but
``parts`` (each part's file, command, commit, machine, created, methods, binarize,
seeds and jobs) in place of command/commit/machine at the top level being its own;
its ``config`` holds the keys every part shares, and ``command`` the merge command.

Schema 1 differed only in ``binary_check`` per run (who counted the deployed outputs)
and had no ``jobs``.
"""

from .markdown import format_markdown
from .merge import merge_summaries
from .results import aggregate
from .sweep import SCHEMA, run_compare

__all__ = ["SCHEMA", "aggregate", "format_markdown", "merge_summaries", "run_compare"]
