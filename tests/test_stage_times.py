"""What a reproduction's stages cost: seconds read back from real checkpoints and crafted sets."""

from __future__ import annotations

import pytest

from agscm.errors import AgscmError
from agscm.eval.stage_times import (
    NOT_RECORDED,
    checkpoint_stage,
    checkpoint_time,
    stage_table,
    table_stage,
)
from agscm.eval.transfer import CraftedSet, EvalConfig, TransferResult
from agscm.formatting import duration
from agscm.models.checkpoint import load_checkpoint, read_meta, save_checkpoint


def test_a_checkpoint_reports_its_epochs_seconds_and_device(tiny_zoo) -> None:
    path = tiny_zoo / "tiny-natural.safetensors"
    history = load_checkpoint(path)[1]["history"]
    item = checkpoint_time(path)
    assert (item.name, item.epochs, len(history)) == ("tiny-natural", 2, 2)
    assert item.seconds == pytest.approx(sum(row["seconds"] for row in history))
    assert item.seconds > 0 and item.devices == ["cpu"]


def test_epochs_from_before_devices_were_recorded_fall_back_to_the_config(tiny_zoo,
                                                                           tmp_path) -> None:
    tensors, meta = load_checkpoint(tiny_zoo / "tiny-natural.safetensors")
    old = {**meta, "history": [{k: v for k, v in row.items() if k != "device"}
                               for row in meta["history"]]}
    save_checkpoint(tmp_path / "old-zoo.safetensors", tensors, old)
    assert checkpoint_time(tmp_path / "old-zoo.safetensors").devices == [NOT_RECORDED]
    configured = {**old, "train": {**old["train"], "device": "cuda"}}
    save_checkpoint(tmp_path / "old-generator.safetensors", tensors, configured)
    assert checkpoint_time(tmp_path / "old-generator.safetensors").devices == ["cuda"]


def test_the_stage_table_sums_models_and_crafted_sets(tiny_zoo) -> None:
    path = tiny_zoo / "tiny-natural.safetensors"
    zoo = checkpoint_stage("zoo", [path, path], run_seconds=3.2)
    sets = [CraftedSet("tiny-natural", method, {}, ["tiny-natural"], 100, seconds, 1.0, 0.3,
                       0.3, 1.0, cached, None)
            for method, seconds, cached in (("pgd", 20.0, True), ("noise", 40.0, False))]
    result = TransferResult(EvalConfig("x", ["tiny-natural"]), 0.3, 100, ["tiny-natural"], ["pgd", "noise"],
                            ["tiny-natural"], {"tiny-natural": 0.9}, sets, [], scoring_seconds=30.0)
    table = table_stage("transfer table", result, run_seconds=75.0)
    text = stage_table([zoo, table])
    assert zoo.seconds == pytest.approx(2 * checkpoint_time(path).seconds)
    assert table.seconds == 90.0
    assert f"| zoo | 2 | {duration(zoo.seconds)} |  | cpu | 3 s |" in text
    assert "| transfer table | 2 | 2 min | 30 s | not recorded | 1 min |" in text
    assert text.count("| zoo | `tiny-natural` | 2 |") == 2 and "| transfer table | `" not in text


def test_reading_meta_skips_the_tensors_and_fails_in_one_line(tiny_zoo, tmp_path) -> None:
    path = tiny_zoo / "tiny-natural.safetensors"
    assert read_meta(path) == load_checkpoint(path)[1]
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(AgscmError, match="not a readable agscm checkpoint"):
        read_meta(corrupt)
    with pytest.raises(AgscmError, match="checkpoint not found"):
        read_meta(tmp_path / "missing.safetensors")
