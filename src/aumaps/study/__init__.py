"""Studies: whole folder trees of videos (and images) in one command, resumable, on one
machine or many, with per-person baselines and per-video summaries.

* :mod:`.discover`: the items of a study and the CSV each gets, mirroring the tree; the
  share of one job (``--shard I/N``, ``torchrun`` ranks);
* :mod:`.options`: :class:`StudyOptions`, and which options change the results;
* :mod:`.analyse`: one item (a video, a folder of frames, a folder's images) into its CSV,
  written under a temporary name and renamed when complete;
* :mod:`.processes`: this process, ``workers`` on this machine, ``torchrun``'s ranks;
* :mod:`.run`: :func:`run_study`, what ``aumaps predict STUDY --out-dir OUT`` runs: the
  plan (what is complete is skipped), the analysis, a progress bar and the run log;
* :mod:`.fingerprint`: what a CSV was made from (the input's fingerprint, the weights'
  SHA-256 and the aumaps version), so a resumed run redoes what changed;
* :mod:`.runlog`: the run log (``run.json``, one per shard);
* :mod:`.baseline`: each face track's neutral, estimated from the video (per AU or per map
  pixel), and the corrected ``AUxx_r_corr`` columns;
* :mod:`.summary`: :func:`summarize`, one row per video and face track (``aumaps summarize``);
* :mod:`.page`: the study page (one row per video, a sparkline per AU, links to reports).

::

    from aumaps.study import StudyOptions, run_study, summarize
    run = run_study("interviews/", "results/", StudyOptions(baseline="scalar", workers=2))
    table = summarize("results/", by="participants.csv", key="video")

``docs/study.md`` describes the layout of the results and how to run a study on a cluster.
"""

from .baseline import DEFAULT_FORM, DEFAULT_PERCENTILE, correct_csv, corrected_column
from .discover import EmptyStudyError, StudyItem, discover_study, holds_videos, launcher_shard, log_name, select_shard
from .page import write_study_page
from .run import StudyOptions, StudyRun, run_study
from .runlog import merged_items, read_logs
from .summary import join_sheet, summarize, summarize_video

__all__ = [
    "DEFAULT_FORM",
    "DEFAULT_PERCENTILE",
    "EmptyStudyError",
    "StudyItem",
    "StudyOptions",
    "StudyRun",
    "correct_csv",
    "corrected_column",
    "discover_study",
    "holds_videos",
    "join_sheet",
    "launcher_shard",
    "log_name",
    "merged_items",
    "read_logs",
    "run_study",
    "select_shard",
    "summarize",
    "summarize_video",
    "write_study_page",
]
