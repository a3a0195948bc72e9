"""`real3d generate`: bad input is one line and exit 2 with nothing half-written; resume; determinism."""

import json
import os
from pathlib import Path

import pytest
import torch

from real3d.cli import main

# a tiny budget: the whole Eq. 11 machinery (both renderers, SDS, D, x̃, export) in seconds
TINY = [
    "steps=6",
    "reference.count=4",
    "reference.steps=2",
    "reference.batch=4",
    "system.nerf_resolution=16",
    "system.dmtet_resolution=24",
    "renderer.num_samples=16",
    "renderer.grid_resolution=16",
    "system.p_nerf=1.0",
    "system.p_dmtet=1.0",
    "run.checkpoint_every=3",
    "run.export_grid=32",
    "run.texture_size=32",
    "run.turntable_frames=4",
    "run.turntable_size=32",
    "field.resolution=16",
    "reference.cache_dir=REF",
]


def tiny(tmp_path: Path) -> list[str]:
    return [a.replace("REF", str(tmp_path / "ref")) for a in TINY]


def cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def one_line(err: str) -> str:
    assert err.count("\n") == 1 and err.startswith("real3d: error: "), err
    return err


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["   "], "the prompt is empty"),
        (["a red cub"], "cub"),
        (["a red cube", "--preset", "nope"], "unknown preset 'nope'"),
        (["a red cube", "--seeds", "1,x"], "expected comma-separated integers"),
        (["x", "--no-such-option=1"], "unrecognized arguments: --no-such-option=1"),
        (["a ripe strawberry", "--preset", "real3d-sd", "prior.path=/nonexistent/sd"], "/nonexistent/sd"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(capsys, tmp_path, argv, expected):
    out = tmp_path / "run"
    code, err = cli(capsys, "generate", *argv, "--out", str(out))
    assert code == 2 and expected in one_line(err)
    assert not out.exists()


def test_existing_output_folder_is_kept(capsys, tmp_path):
    (tmp_path / "mine.txt").write_text("keep")
    code, err = cli(capsys, "generate", "a red cube", "--out", str(tmp_path))
    assert code == 2 and "--overwrite" in one_line(err)
    assert (tmp_path / "mine.txt").read_text() == "keep"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_folder(capsys, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    code, err = cli(capsys, "generate", "a red cube", "--out", str(locked / "run"))
    assert code == 2 and "cannot write" in one_line(err)


def test_output_under_a_file_is_refused(capsys, tmp_path):
    (tmp_path / "file").write_text("x")
    code, err = cli(capsys, "generate", "a red cube", "--out", str(tmp_path / "file"))
    assert code == 2 and "is a file" in one_line(err)


def test_corrupt_checkpoint_on_resume(capsys, tmp_path):
    run = tmp_path / "run"
    assert main(["generate", "a red cube", "--out", str(run), *tiny(tmp_path)]) == 0
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    capsys.readouterr()  # the first run's progress bars
    code, err = cli(capsys, "generate", "--resume", str(run))
    assert code == 2 and "is corrupt" in one_line(err)


def test_run_writes_outputs_then_resume_finishes(tmp_path):
    run = tmp_path / "run"
    args = ["generate", "a blue sphere", "--out", str(run), *tiny(tmp_path)]
    assert main([*args, "steps=3"]) == 0  # a run stopped after 3 of 6 steps ...
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 3
    cfg_text = (run / "config.yaml").read_text().replace("steps: 3\n", "steps: 6\n", 1)
    (run / "config.yaml").write_text(cfg_text)  # ... and the longer budget it was meant to have
    assert main(["generate", "--resume", str(run)]) == 0
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 6
    for name in (
        "model.glb",
        "model.obj",
        "model.mtl",
        "model.png",
        "turntable.mp4",
        "turntable.gif",
        "config.yaml",
        "metrics.json",
        "train.log",
    ):
        assert (run / name).stat().st_size > 0, name
    import trimesh

    mesh = trimesh.load(run / "model.glb", force="mesh")
    assert len(mesh.faces) > 0 and mesh.visual.material is not None
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 6 and "ms_per_step" in metrics


def test_a_run_with_perp_neg_scores_its_front_against_the_camera(tmp_path):
    """sds.perp_neg reaches the prior through the system; metrics.json of a prompt with a front has the
    camera-aware Janus and front feature, and the judge-free metrics."""
    out = tmp_path / "run"
    assert main(["generate", "a red cube with a face", "--out", str(out), *tiny(tmp_path), "sds.perp_neg=1.0"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["janus"] in (0.0, 1.0) and 0 <= metrics["front_feature"] <= 1
    assert (
        0 <= metrics["silhouette_iou"] <= 1
        and 0 <= metrics["colour_error"] <= 1
        and 0 <= metrics["colour_accuracy"] <= 1
    )
    # IoU = |A∩B| / (|A|/precision + |B|/recall − |A∩B|) with |A∩B| = 1: the three agree
    p, r = metrics["mesh_precision"], metrics["mesh_recall"]
    assert abs(metrics["mesh_iou"] - 1 / (1 / p + 1 / r - 1)) < 1e-4


def test_same_seed_same_result(tmp_path):
    def run(name: str) -> dict:
        out = tmp_path / name
        assert main(["generate", "a green cone", "--out", str(out), "--seed", "3", *tiny(tmp_path)]) == 0
        return torch.load(out / "checkpoint.pt", weights_only=True)["model"]

    a, b = run("a"), run("b")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_non_finite_loss_rolls_back_with_half_the_learning_rate(tmp_path, monkeypatch):
    from real3d.system import Real3DSystem

    real_step = Real3DSystem.training_step
    calls = {"n": 0}

    def flaky(self, step, generator):
        calls["n"] += 1
        stats = real_step(self, step, generator)
        return stats | {"loss": float("nan")} if calls["n"] == 5 else stats

    monkeypatch.setattr(Real3DSystem, "training_step", flaky)
    run = tmp_path / "run"
    assert main(["generate", "a red cube", "--out", str(run), *tiny(tmp_path)]) == 0
    log = [json.loads(line) for line in (run / "train.log").read_text().splitlines()]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in log)
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 6 and calls["n"] == 6 + 2  # the NaN call, and step 3 redone after the rollback to 3
    assert ckpt["scheduler"]["base_lrs"][0] == pytest.approx(2.5e-3)


def test_ctrl_c_stops_after_the_step_with_a_checkpoint(capsys, tmp_path, monkeypatch):
    import signal

    from real3d.system import Real3DSystem

    real_step = Real3DSystem.training_step

    def interrupted(self, step, generator):
        if step == 1:
            signal.raise_signal(signal.SIGINT)  # the user presses Ctrl-C during step 1
        return real_step(self, step, generator)

    monkeypatch.setattr(Real3DSystem, "training_step", interrupted)
    run = tmp_path / "run"
    code, err = cli(capsys, "generate", "a red cube", "--out", str(run), *tiny(tmp_path))
    assert code == 130
    assert f"continue with: real3d generate --resume {run}" in err.splitlines()[-1]
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 2
    monkeypatch.setattr(Real3DSystem, "training_step", real_step)
    assert main(["generate", "--resume", str(run)]) == 0
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 6


def test_a_fitted_level_is_checkpointed_and_exported(tmp_path):
    """system.fit_level_every moves DMTet's ε to the level the NeRF draws (the start blob draws wider than
    τ = 0.1); the level is in the checkpoint, comes back with it, and is the level the export meshes."""
    from real3d.export import LEVELS
    from real3d.model import load_checkpoint

    out = tmp_path / "run"
    args = ["generate", "a blue sphere", "--out", str(out), *tiny(tmp_path), "system.fit_level_every=2"]
    assert main(args) == 0
    level = float(torch.load(out / "checkpoint.pt", weights_only=True)["model"]["explicit.geometry.level"])
    assert level in LEVELS and level != 0.1, "the level moved off the configured ε"
    assert load_checkpoint(out)[1].explicit.geometry.eps == level
    assert json.loads((out / "metrics.json").read_text())["export_eps"] == level
