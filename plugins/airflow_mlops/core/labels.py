"""Which class binary-classification metrics treat as positive (f1, precision, recall, ROC AUC).

One rule, used by training, the gate, the bootstrap, the plots, monitoring and the smoke test:

1. ``target.positive_class`` when the config sets it (it must be one of the classes);
2. else, for text labels, the one label that reads as positive: yes, y, true, 1 or positive
   (any case, surrounding spaces ignored), e.g. "Yes" of "Yes"/"No";
3. else the last class in sorted order: 1 of 0/1, True of False/True (what scikit-learn's
   ``classes_[1]`` is). For text labels that is a guess, logged as a warning: set the option.

It depends on the config and the set of classes only (not on class frequencies), so the champion
and the challenger, trained on different windows, agree on it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_mlops.core.config import PipelineConfig

log = logging.getLogger(__name__)

#: Text labels that name the positive class of a binary target (compared lower-case, stripped).
POSITIVE_WORDS = frozenset({"yes", "y", "true", "1", "positive"})


def positive_class(config: PipelineConfig, labels: Sequence[Any] | None) -> Any:
    """The positive class among `labels` (the model's ``classes_``); None unless the task is binary."""
    return resolve(config, labels)[0]


def resolve(config: PipelineConfig, labels: Sequence[Any] | None) -> tuple[Any, str]:
    """(the positive class, how it was chosen in words); (None, "") unless the task is binary.

    Raises ConfigError when ``target.positive_class`` is not one of `labels`.
    """
    if config.task != "binary_classification" or labels is None or len(labels) == 0:
        return None, ""
    classes = [_plain(c) for c in labels]
    wanted = config.positive_class
    if wanted is not None:
        match = [c for c in classes if c == wanted and isinstance(c, bool) == isinstance(wanted, bool)]
        match = match or [c for c in classes if str(c) == str(wanted)]  # YAML 1 for the text label "1"
        if len(match) != 1:
            raise ConfigError(
                f"{config.path}: target.positive_class: {wanted!r} is not one of the classes of target column "
                f"{config.target!r} ({', '.join(map(repr, classes))}); labels are case-sensitive: fix the option "
                f"or the labels"
            )
        return match[0], "target.positive_class"
    if any(isinstance(c, str) for c in classes):
        words = [c for c in classes if str(c).strip().lower() in POSITIVE_WORDS]
        if len(words) == 1:
            return words[0], "inferred: the label that reads as positive"
        chosen = sorted(classes, key=str)[-1]
        log.warning(
            "%s: binary metrics treat %r as the positive class (the last of the sorted labels %s); set "
            "target.positive_class to choose",
            config.path or config.name,
            chosen,
            classes,
        )
        return chosen, "inferred: the last of the sorted labels; set target.positive_class to choose"
    return sorted(classes)[-1], "inferred: the last of the sorted classes"


def describe(config: PipelineConfig, labels: Sequence[Any] | None) -> str:
    """E.g. "'Yes' (inferred: the label that reads as positive)"; "" unless the task is binary."""
    chosen, how = resolve(config, labels)
    return "" if how == "" else f"{chosen!r} ({how})"


def positive_index(labels: Sequence[Any], positive: Any) -> int:
    """The column of `positive` in predict_proba's output (`labels` order); the last one when None."""
    if positive is None:
        return len(labels) - 1
    for i, label in enumerate(labels):
        if _plain(label) == positive and isinstance(_plain(label), bool) == isinstance(positive, bool):
            return i
    raise ValueError(f"positive class {positive!r} is not among the classes {[_plain(c) for c in labels]}")


def _plain(value: Any) -> Any:
    """A numpy scalar as the plain Python value (JSON-able, prints as 1 not np.int64(1))."""
    return value.item() if hasattr(value, "item") else value
