"""sysdl pipeline: the stage plan, the skip rules, and the whole --quick path end to end."""

from __future__ import annotations

import json

import pytest

from models.cli import pipeline


def names_to_run(plan):
    return [stage.name for stage in plan if stage.current() is None]


def test_an_empty_directory_runs_every_stage(tmp_path):
    plan = pipeline.stages(quick=True, out_root=tmp_path)
    assert [s.name for s in plan] == ["train", "prune", "select", "infer-bench", "benchmarks", "bench-table"]
    assert names_to_run(plan) == [s.name for s in plan]
    assert all("--quick" in s.command for s in plan if s.name in ("train", "prune", "infer-bench"))
    assert "--overwrite" in next(s for s in plan if s.name == "infer-bench").command   # run only when stale
    assert all(str(tmp_path) in " ".join(s.command) for s in plan)


def test_an_unfinished_training_checkpoint_is_not_current(tmp_path):
    from models.training.checkpoint import save_checkpoint
    from models.nets.fashion_cnn import FashionCNN
    save_checkpoint(tmp_path / "base.pt", FashionCNN(), {}, resume={"epoch": 1})
    assert pipeline._training_finished(tmp_path / "base.pt") is None
    save_checkpoint(tmp_path / "base.pt", FashionCNN(), {})
    assert "finished" in pipeline._training_finished(tmp_path / "base.pt")


def session_state(finished: bool, steps: int, **extra) -> str:
    """A pruning session's state.json with ``steps`` step records (the base model's included)."""
    from models.pruning.prune import STEP_KEYS
    return json.dumps({"config": {"heuristic": "l1", "schedule": "global"}, "layer_index": 0, "finished": finished,
                       "steps": [{key: 0 for key in STEP_KEYS} for _ in range(steps)], **extra})


def test_a_session_from_another_base_is_not_current(tmp_path):
    import hashlib
    base = tmp_path / "base.pt"
    base.write_bytes(b"model A")
    state = tmp_path / "state.json"
    state.write_text(session_state(True, 2, base_sha256=hashlib.sha256(b"model A").hexdigest()))
    assert "finished (1 steps)" in pipeline._session_finished(state, base)
    base.write_bytes(b"model B")
    assert pipeline._session_finished(state, base) is None
    state.write_text(session_state(False, 1))
    assert pipeline._session_finished(state, base) is None


@pytest.mark.parametrize("text", ["{not json", "[]", '{"finished": true, "steps": 3}'])
def test_a_garbage_session_state_is_an_error_naming_the_file(tmp_path, text):
    from models.shared.errors import UserError
    base = tmp_path / "base.pt"
    base.write_bytes(b"model A")
    state = tmp_path / "state.json"
    state.write_text(text)
    with pytest.raises(UserError, match=str(state)):
        pipeline._session_finished(state, base)


def test_dry_run_says_how_long_and_runs_nothing(tmp_path, capsys):
    assert pipeline.run(quick=True, dry_run=True, out_root=tmp_path) == 0
    out = capsys.readouterr().out
    total = pipeline._duration(sum(pipeline.ESTIMATES[True].values()))
    assert f"about {total} here" in out and out.count("run  (~") == 6
    assert list(tmp_path.iterdir()) == []


@pytest.mark.needs_data
def test_quick_pipeline_end_to_end_then_everything_is_current(tmp_path, capsys):
    assert pipeline.run(quick=True, out_root=tmp_path) == 0
    out = capsys.readouterr().out
    assert "summary:" in out and "failed" not in out
    for path in ("base.pt", "prune/l1-global/state.json", "pruned_selected.pt", "infer_bench.csv", "bench.json",
                 "bench_table/bench_conv.md", "bench_table/bench_inference.png"):
        assert (tmp_path / path).exists(), path
    bench = json.loads((tmp_path / "bench.json").read_text())
    families = {b["extra_info"]["family"] for b in bench["benchmarks"]}
    assert families == {"conv", "layers", "inference", "lowering"}
    assert names_to_run(pipeline.stages(quick=True, out_root=tmp_path)) == ["bench-table"]
