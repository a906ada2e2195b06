"""The tags of a performance-check run: the check writes them, the debounce, the table and the CLI read them back."""

from __future__ import annotations

STEP = "performance"
DAY_TAG = "performance.day"
VERSION_TAG = "performance.version"  # the champion version judged
VERDICT_TAG = "performance.verdict"  # decay | no_decay | not_judged | join_failed
JUDGED_TAG = "performance.judged"
METRIC_TAG = "performance.metric"
CHECKED_AT_TAG = "performance.checked_at"
