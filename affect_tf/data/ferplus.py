"""FER+ reader: Microsoft's ``FER2013{Train,Valid,Test}/label.csv`` vote counts over FER-2013's
48 x 48 face crops.

Layout under the root (as Microsoft's ``generate_training_data.py`` writes it): one folder per
split, each with ``fer*.png`` and a header-less ``label.csv``: image file, face box
``"(0, 0, 48, 48)"``, then 10 vote counts (``labels.FERPLUS_VOTES``: 8 emotions, unknown, not a
face). The FER+ paper's majority-vote rules: a face whose top vote is ``unknown`` or ``NF`` is
dropped, and so is one whose top votes are tied; its label is the emotion with the most votes
(contempt -> Other). Each drop is counted by reason in the ``SkipReport``. The 8 emotions'
votes, normalised, travel as the soft label ``expression_dist``.

The images are ready-cropped faces: every sample is ``aligned`` (the whole image is the face),
so no detector runs (most find nothing at 48 px). Every image is its own split unit.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from affect_tf.core.labels import FERPLUS_TO_ABAW, FERPLUS_VOTES, unique_top
from affect_tf.data.corpus import CorpusError, Sample, SkipReport, require_dir

SPLIT_DIRS = {"train": "FER2013Train", "validation": "FER2013Valid", "test": "FER2013Test"}
LABEL_FILE = "label.csv"
_UNKNOWN, _NOT_A_FACE = FERPLUS_VOTES.index("unknown"), FERPLUS_VOTES.index("NF")


def majority_label(votes: list[int]) -> tuple[int | None, str | None]:
    """``(ABAW class, None)`` by the FER+ majority-vote rules, or ``(None, skip reason)``:
    ``top_vote_unknown``, ``top_vote_not_a_face``, ``tied_votes`` or ``no_votes``."""
    if max(votes) <= 0:
        return None, "no_votes"
    top = unique_top(votes)
    if top is None:
        return None, "tied_votes"
    if top == _UNKNOWN:
        return None, "top_vote_unknown"
    if top == _NOT_A_FACE:
        return None, "top_vote_not_a_face"
    return FERPLUS_TO_ABAW[top], None


def vote_distribution(votes: list[int]) -> list[float]:
    """The 8 emotions' votes in ABAW class order, normalised (unknown and NF left out): the
    soft label the expression loss trains on (the FER+ paper's cross-entropy scheme)."""
    dist = [0.0] * len(FERPLUS_TO_ABAW)
    for ferplus_index, abaw_index in FERPLUS_TO_ABAW.items():
        dist[abaw_index] = float(votes[ferplus_index])
    total = sum(dist)
    return [v / total for v in dist]


def parse_votes(cells: list[str]) -> list[int]:
    """The 10 vote counts of a ``label.csv`` row (after the file name and box).

    Raises:
        ValueError: Not 10 cells, or a count that is not a whole number >= 0.
    """
    if len(cells) != len(FERPLUS_VOTES):
        raise ValueError(f"expected {len(FERPLUS_VOTES)} vote counts, got {len(cells)}")
    votes = []
    for name, cell in zip(FERPLUS_VOTES, cells, strict=True):
        try:
            value = float(cell)
        except ValueError:
            raise ValueError(f"field={name}: expected a vote count, got {cell!r}") from None
        if not value.is_integer() or value < 0:
            raise ValueError(f"field={name}: expected a whole number >= 0, got {cell!r}")
        votes.append(int(value))
    return votes


def read_ferplus(
    root: str | Path, split: str = "train", report: SkipReport | None = None
) -> Iterator[Sample]:
    """Yields the samples of one FER+ split (``train``, ``validation`` or ``test``).

    Raises:
        CorpusError: The root, the split's folder or its ``label.csv`` is missing.
    """
    report = report if report is not None else SkipReport()
    root = require_dir(root, "FER+")
    if split not in SPLIT_DIRS:
        raise CorpusError(f"Expected split in {sorted(SPLIT_DIRS)}. Received: split={split!r}")
    folder = root / SPLIT_DIRS[split]
    labels = folder / LABEL_FILE
    if not labels.is_file():
        raise CorpusError(
            f"Expected {SPLIT_DIRS[split]}/{LABEL_FILE} (Microsoft's FER+ layout) in the FER+ "
            f"root. Received: root={str(root)!r} ({labels.relative_to(root)} not found)"
        )
    with labels.open(newline="", encoding="utf-8-sig") as f:
        for number, cells in enumerate(csv.reader(f), start=1):
            where = f"{labels}:{number}"
            if not cells or all(not c.strip() for c in cells):
                continue
            try:
                votes = parse_votes([c.strip() for c in cells[2:]])
            except ValueError as e:
                report.skip("votes_invalid", where, str(e))
                continue
            expression, reason = majority_label(votes)
            if reason is not None:
                report.skip(reason, where, f"votes={votes}")
                continue
            name = cells[0].strip()
            yield Sample(
                path=folder / name,
                aligned=True,
                expression=expression,
                expr_mask=1,
                expression_dist=vote_distribution(votes),
                video_id=f"{SPLIT_DIRS[split]}/{name}",
                frame=0,
                source="ferplus",
            )
