"""A pruning session's files: checkpoint paths relative to the session, the report's checks on the
model it selects, garbage state.json files, and the prune command's --base."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from models.cli.main import main
from models.data.datasets import synthetic_splits
from models.nets.fashion_cnn import FashionCNN, FashionCNNConfig
from models.pruning import prune
from models.reports.prune_report import prune_report
from models.shared.errors import UserError
from models.training.checkpoint import load_model, save_checkpoint

CFG = prune.PruneConfig(retrain_epochs=1, max_steps_per_layer=1, importance_batch=32, max_drop=0.5)
SESSION = CFG.name


def make_session(root, sizes=(3, 3, 6)):
    """A finished session under root/runs/prune, run from root with the relative default paths."""
    data = synthetic_splits(n_train=64, n_test=32)
    torch.manual_seed(0)
    model = FashionCNN(FashionCNNConfig(conv1_channels=sizes[0], conv2_channels=sizes[1], hidden_units=sizes[2]))
    root.mkdir(parents=True, exist_ok=True)
    save_checkpoint(root / "base.pt", model)
    prune.run_session("base.pt", data, CFG, "runs/prune", track=False, progress=False, log=lambda m: None)
    return root / "runs" / "prune" / SESSION


def sizes_of(path):
    config = load_model(path)[0].config
    return config.conv1_channels, config.conv2_channels, config.hidden_units


def test_checkpoints_are_recorded_relative_to_the_session(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    session = make_session(tmp_path)
    state = json.loads((session / "state.json").read_text())
    assert [s["checkpoint"] for s in state["steps"]] == [f"step_{i:03d}.pt" for i in range(len(state["steps"]))]


def test_the_report_selects_this_sessions_model_from_another_directory(tmp_path, monkeypatch):
    """Run from b, the report of a's sessions must copy a's model, not b's file of the same name."""
    for name, sizes in (("a", (3, 3, 6)), ("b", (4, 2, 5))):
        (tmp_path / name).mkdir()
        monkeypatch.chdir(tmp_path / name)
        make_session(tmp_path / name, sizes)
    report = prune_report(tmp_path / "a" / "runs" / "prune", tmp_path / "out", threshold=0.0,
                          selected_path=tmp_path / "sel.pt")
    row = report["selected"]
    assert sizes_of(tmp_path / "sel.pt") == (row["conv1_channels"], row["conv2_channels"], row["hidden_units"])
    chosen = tmp_path / "a" / "runs" / "prune" / SESSION / f"step_{int(row['step']):03d}.pt"
    assert (tmp_path / "sel.pt").read_bytes() == chosen.read_bytes()


def test_an_old_state_with_cwd_relative_paths_still_reads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    session = make_session(tmp_path)
    state = json.loads((session / "state.json").read_text())
    for step in state["steps"]:                      # as sysdl wrote them before: relative to the cwd
        step["checkpoint"] = f"runs/prune/{SESSION}/{step['checkpoint']}"
    (session / "state.json").write_text(json.dumps(state))
    report = prune_report("runs/prune", tmp_path / "out", threshold=0.0, selected_path=tmp_path / "sel.pt")
    row = report["selected"]
    assert sizes_of(tmp_path / "sel.pt") == (row["conv1_channels"], row["conv2_channels"], row["hidden_units"])


@pytest.mark.parametrize("damage", ["truncated", "other sizes"])
def test_a_bad_selected_checkpoint_is_refused_naming_the_file(tmp_path, monkeypatch, capsys, damage):
    monkeypatch.chdir(tmp_path)
    session = make_session(tmp_path)
    for step in session.glob("step_*.pt"):                         # whichever it selects is damaged
        if damage == "truncated":
            step.write_bytes(step.read_bytes()[:100])
        else:
            save_checkpoint(step, FashionCNN(FashionCNNConfig(conv1_channels=7, conv2_channels=7, hidden_units=7)))
    selected = tmp_path / "sel.pt"
    assert main(["report", "prune", "--prune-dir", "runs/prune", "--out-dir", str(tmp_path / "out"),
                 "--threshold", "0", "--selected", str(selected)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sysdl report prune: error: ") and "\n" not in err and "step_0" in err, err
    assert not selected.exists()


@pytest.mark.parametrize("text", ["{not json", "[]", '{"config": {}, "steps": 3}',
                                  '{"config": {"heuristic": "l1", "schedule": "layer"}, "steps": [{"step": 0}], '
                                  '"finished": true, "layer_index": 0}'])
def test_a_garbage_state_is_a_clear_error_in_resume_and_report(tmp_path, monkeypatch, capsys, text):
    monkeypatch.chdir(tmp_path)
    session = make_session(tmp_path)
    (session / "state.json").write_text(text)
    data = synthetic_splits(n_train=64, n_test=32)
    with pytest.raises(UserError, match="state.json"):
        prune.run_session("base.pt", data, CFG, "runs/prune", track=False, progress=False)
    assert main(["report", "prune", "--prune-dir", "runs/prune", "--out-dir", str(tmp_path / "out"),
                 "--threshold", "0", "--selected", str(tmp_path / "sel.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"runs/prune/{SESSION}/state.json" in err, err


def test_a_moved_session_resumes_from_its_own_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    session = make_session(tmp_path)
    shutil.move(session.parent, tmp_path / "elsewhere")
    model = prune.Session(tmp_path / "elsewhere" / SESSION, CFG, "base.pt").current_model()
    accepted = [s for s in json.loads((tmp_path / "elsewhere" / SESSION / "state.json").read_text())["steps"]
                if s["accepted"]][-1]
    assert (model.config.conv1_channels, model.config.conv2_channels, model.config.hidden_units) == (
        accepted["conv1_channels"], accepted["conv2_channels"], accepted["hidden_units"])


def test_prune_refuses_a_base_the_user_named_that_is_missing(tmp_path, capsys):
    out_dir = tmp_path / "prune"
    assert main(["prune", "--quick", "--dataset", "synthetic", "--no-track", "--no-progress",
                 "--base", str(tmp_path / "missing.pt"), "--out-dir", str(out_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sysdl prune: error: ") and "missing.pt" in err and "\n" not in err, err
    assert not out_dir.exists() or not any(out_dir.iterdir()), "nothing may be trained or pruned"
