"""One number style: rates as percentages, measured values rounded for display."""

from __future__ import annotations

from agscm.formatting import duration, percent, rounded
from agscm.progress import format_metrics


def test_rates_are_percentages_with_two_decimals() -> None:
    assert percent(0.14) == "14.00%" and percent(1.0) == "100.00%" and percent(0.98765) == "98.77%"


def test_rounded_keeps_six_significant_digits_through_a_config_tree() -> None:
    config = {"c": 0.75 * 0.3 * 28, "eps": 8 / 255, "sizes": [28, 28], "name": "g",
              "nested": {"lr": 0.001, "flag": True}, "pair": (0.1 + 0.2, 2)}
    assert rounded(config) == {"c": 6.3, "eps": 0.0313725, "sizes": [28, 28], "name": "g",
                               "nested": {"lr": 0.001, "flag": True}, "pair": [0.3, 2]}


def test_progress_metrics_show_every_accuracy_in_percent() -> None:
    text = format_metrics({"loss": 0.123456, "val_acc[mnist-natural]": 0.315, "test_acc": 0.9})
    assert text == "loss 0.1235 val_acc[mnist-natural] 31.50% test_acc 90.00%"


def test_durations_read_as_seconds_minutes_or_hours() -> None:
    assert [duration(s) for s in (0.4, 42, 59.4, 59.6, 150, 3599, 4000, 26_400)] == [
        "0 s", "42 s", "59 s", "1 min", "2 min", "1 h 00 min", "1 h 07 min", "7 h 20 min"]
