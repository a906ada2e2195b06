"""A verdict's panels as tests/helpers/schemas.md fixes them (PanelResult.to_dict() of each panel), with churn's
columns: for rendering tests only. The browser test judges real models with the real gate instead."""

from __future__ import annotations

from typing import Any


def _slice(name: str, rows: int, events: dict | None, status: str, ch: float, cp: float | None, **kw: Any) -> dict:
    column, _, value = name.partition("=")
    gain = None if cp is None else round(ch - cp, 4)
    return {
        "slice": name,
        "columns": [column],
        "values": [value],
        "rows": rows,
        "events": events,
        "status": status,
        "reason": kw.get("reason", ""),
        "metric": "roc_auc",
        "challenger": ch,
        "champion": cp,
        "gain": gain,
        "low": kw.get("low"),
        "high": kw.get("high"),
        "p": kw.get("p"),
        "p_adjusted": kw.get("p_adjusted"),
        "guard_rails": {},
    }


def verdict_panels(*, blocked: bool = True) -> dict[str, dict]:
    """verdict.json's "panels": a challenger that loses region=south (blocks unless `blocked` is False)."""
    south = "regresses" if blocked else "holds"
    slices = [
        _slice("contract=two-year", 310, {"0": 290, "1": 20}, "holds", 0.801, 0.796, low=-0.02, high=0.03, p=0.61,
               p_adjusted=1.0),
        _slice("region=south", 402, {"0": 301, "1": 101}, south, 0.712, 0.781, low=-0.095, high=-0.041, p=0.0003,
               p_adjusted=0.0021, reason="roc_auc -0.069 < -0.01 (p 0.0021 after holm)" if blocked else ""),
        _slice("region=north", 398, {"0": 290, "1": 108}, "holds", 0.823, 0.815, low=-0.01, high=0.026, p=0.81,
               p_adjusted=1.0),
        _slice("region=east & contract=one-year", 61, {"0": 55, "1": 6}, "insufficient evidence", 0.74, 0.70,
               reason="61 rows < evaluation.slices.min_slice_rows 200"),
        _slice("region=west", 388, {"0": 280, "1": 108}, "holds", 0.806, 0.809, low=-0.028, high=0.02, p=0.38,
               p_adjusted=1.0),
        _slice("region=<script>x</script>", 12, {"0": 12}, "insufficient evidence", 0.5, 0.5,
               reason="one class only: 12 rows of 0, none of 1"),
    ]  # fmt: skip
    importance = [
        {"feature": f, "challenger": ch, "challenger_std": s1, "champion": cp, "champion_std": s2,
         "challenger_rank": r1, "champion_rank": r2}
        for f, ch, s1, cp, s2, r1, r2 in [
            ("tenure_months", 0.081, 0.006, 0.074, 0.005, 1, 1),
            ("monthly_charges", 0.061, 0.004, 0.055, 0.003, 2, 2),
            ("contract", 0.048, 0.005, 0.050, 0.004, 3, 3),
            ("support_calls", 0.030, 0.003, 0.011, 0.002, 4, 5),
            ("region", 0.004, 0.002, 0.021, 0.003, 6, 4),
            ("data_usage_gb", 0.006, 0.001, 0.007, 0.002, 5, 6),
            ("payment_method", -0.001, 0.001, 0.001, 0.001, 7, 7),
        ]
    ]  # fmt: skip
    checks = [(not blocked, "slice region=south: roc_auc gain -0.069 (-0.095..-0.041), p 0.0021 after holm")]
    return {
        "slices": {
            "name": "slices",
            "summary": "worst slice region=south: roc_auc -0.069 (-0.095..-0.041), blocks"
            if blocked
            else "worst slice region=west: roc_auc -0.003, holds; 4 judged, 2 too small",
            "blocked": blocked,
            "checks": [{"passed": ok, "text": text} for ok, text in checks],
            "notes": ["slice region=east & contract=one-year: insufficient evidence (61 rows < 200)"],
            "table": slices,
            "metrics": {"judged": 4.0, "insufficient": 2.0, "worst_gain": -0.069},
            "detail": {"judged": 4, "insufficient": 2, "correction": "holm", "alpha": 0.05, "tolerance": 0.01},
        },
        "importance": {
            "name": "importance",
            "summary": "importance ranking nDCG 0.97, Spearman 0.86 vs the champion; top: tenure_months",
            "blocked": False,
            "checks": [],
            "notes": [],
            "table": importance,
            "metrics": {"ndcg": 0.97, "spearman": 0.86},
            "detail": {
                "metric": "roc_auc",
                "rows": 600,
                "repeats": 5,
                "ndcg": 0.97,
                "spearman": 0.86,
                "moved": ["support_calls", "region"],
                "leaning": None,
            },
        },  # fmt: skip
        "robustness": {
            "name": "robustness",
            "summary": "flip rate 1.2% (champion 1.0%), monotonic violations 0.0%, Brier 0.142 (champion 0.145)",
            "blocked": False,
            "checks": [{"passed": True, "text": "robustness: flip rate +0.2% <= 2.0%"}],
            "notes": [],
            "table": [
                {
                    "check": "flip_rate",
                    "label": "class flips when numeric inputs move 0.1 MAD",
                    "challenger": 0.012,
                    "champion": 0.010,
                    "difference": 0.002,
                    "low": -0.001,
                    "high": 0.005,
                    "limit": 0.02,
                    "passed": True,
                },
                {
                    "check": "brier",
                    "label": "Brier score",
                    "challenger": 0.142,
                    "champion": 0.145,
                    "difference": -0.003,
                    "low": -0.008,
                    "high": 0.002,
                    "limit": None,
                    "passed": True,
                },
                {
                    "check": "missing:monthly_charges",
                    "label": "roc_auc drop, 10% of monthly_charges missing",
                    "challenger": 0.011,
                    "champion": 0.009,
                    "difference": 0.002,
                    "low": None,
                    "high": None,
                    "limit": None,
                    "passed": None,
                },
            ],
            "metrics": {"flip_rate.challenger": 0.012},
        },  # fmt: skip
    }
