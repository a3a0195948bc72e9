"""`real3d bench quality` on a tiny budget: the results are complete, finished cells are skipped, an
unfinished cell resumes, a changed config is refused, bad input is one line."""

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from real3d.cli import main
from real3d.errors import UserError
from real3d.io import write_text
from real3d.jobs.bench import quality
from real3d.jobs.bench.quality import BenchSettings, bench, plan
from real3d.jobs.cells import Store
from real3d.jobs.web import report
from real3d.priors.embedded import SHIPPED
from real3d.toyworld.runs import gt_views
from tests.cpu import THREADS
from tests.test_generate import TINY, one_line

PROMPTS = ["a red cube", "a blue sphere with a face"]


def tiny_settings(tmp_path: Path) -> BenchSettings:
    overrides = [a.replace("REF", str(tmp_path / "ref")) for a in TINY if not a.startswith("steps=")]
    return BenchSettings(["dreamfusion", "real3d"], PROMPTS, [0], steps=3, overrides=overrides, evolution_every=1)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[BenchSettings, Path, dict]:
    tmp = tmp_path_factory.mktemp("bench")
    settings = tiny_settings(tmp)
    return settings, tmp / "bench", bench(settings, tmp / "bench", threads=THREADS)


def test_results_are_complete(finished):
    settings, root, results = finished
    assert len(results["cells"]) == 4
    assert {c["preset"] for c in results["cells"]} == {"dreamfusion", "real3d"}
    for row in results["presets"].values():
        assert row["cells"] == 2
        for key in (
            "judge",
            "judge_std",
            "r_precision",
            "janus",
            "mesh_iou",
            "chamfer",
            "kid",
            "seconds",
            "judge_single",
            "judge_front",
            "front_feature",
            "silhouette_iou",
            "colour_error",
            "colour_accuracy",
            "mesh_precision",
            "mesh_recall",
        ):
            assert row[key] is not None, key
        assert 0 <= row["judge"] <= 1 and 0 <= row["mesh_iou"] <= 1 and row["chamfer"] > 0
    assert results["presets"]["real3d"]["judge_pair"] is None  # no two-object prompt in the list
    on_disk = json.loads((root / "results.json").read_text())
    assert on_disk["presets"] == results["presets"]
    table = (root / "results.md").read_text()
    assert "| dreamfusion | 2 |" in table and "| real3d | 2 |" in table and "4 of 4" in table
    assert table.count("| a red cube | ") == 1 and table.count("| a blue sphere with a face | ") == 1
    ceiling = results["gt_views"]  # the GT views, scored as the cells are: near 1, and above the tiny runs
    assert ceiling["by_prompt"]["a red cube"] > 0.9 and ceiling["front"] > 0.9 and ceiling["pair"] is None
    assert ceiling["single"] > results["presets"]["real3d"]["judge_single"]
    assert "The judge's ceiling, its score of the GT views themselves: single " in table
    for name in ("contact-dreamfusion.png", "contact-real3d.png", "contact-gt.png", "evolution.png"):
        assert (root / name).stat().st_size > 0, name
    snapshots = sorted((root / "cells/real3d/a-red-cube/seed-0/snapshots").glob("*.png"))
    assert [p.name for p in snapshots] == ["step-000001.png", "step-000002.png", "step-000003.png"]


def test_rerun_skips_finished_cells_and_resumes_unfinished(finished, monkeypatch):
    settings, root, _ = finished
    ran = []
    from real3d.jobs import batch

    real_run_job = batch.run_job
    monkeypatch.setattr(batch, "run_job", lambda job, *a: ran.append(job.cell.folder(root)) or real_run_job(job, *a))
    bench(settings, root, threads=THREADS)
    assert ran == []
    unfinished = root / "cells/dreamfusion/a-blue-sphere-with-a-face/seed-0"
    (unfinished / "metrics.json").unlink()  # as if stopped after its last checkpoint
    bench(settings, root, threads=THREADS)
    assert ran == [unfinished]
    assert json.loads((unfinished / "metrics.json").read_text())["steps"] == 3
    log = (unfinished / "train.log").read_text().splitlines()
    assert len(log) == 1  # the resumed run trained no step twice (one log line, from step 3 of the first run)


def test_a_failed_cell_is_named_in_the_table(finished, tmp_path):
    settings, root, _ = finished
    copy = tmp_path / "bench"
    shutil.copytree(root, copy)
    folder = copy / "cells/real3d/a-red-cube/seed-0"
    (folder / "metrics.json").unlink()
    (folder / "failed.json").write_text(json.dumps({"error": "internal error (IndexError: 3)"}))
    results = quality.summarize(settings, copy)
    table = (copy / "results.md").read_text()
    assert "3 of 4" in table and "- failed: real3d/a-red-cube/seed-0: internal error (IndexError: 3)" in table
    assert results["failed"] == {"real3d/a-red-cube/seed-0": "internal error (IndexError: 3)"}


def test_rescore_reads_the_views_again(finished):
    settings, root, _ = finished
    folder = root / "cells/real3d/a-red-cube/seed-0"
    before = json.loads((folder / "metrics.json").read_text())
    (folder / "metrics.json").write_text(json.dumps({k: v for k, v in before.items() if k != "mesh_recall"}))
    assert quality.rescore(settings, root) == 4
    after = json.loads((folder / "metrics.json").read_text())
    assert after["steps"] == before["steps"]  # the mesh metrics again from model.glb, bit for bit
    assert all(after[k] == before[k] for k in ("mesh_iou", "mesh_precision", "mesh_recall"))
    assert abs(after["judge_score"] - before["judge_score"]) < 0.02  # the same views, stored as 8-bit PNG
    (folder / "views.png").rename(folder / "views.moved.png")  # a cell finished before views.png existed
    try:
        with pytest.raises(UserError, match="delete its metrics.json"):
            quality.rescore(settings, root)
    finally:
        (folder / "views.moved.png").rename(folder / "views.png")


def test_the_prior_row_scores_the_cached_x_tilde_and_fails_wrong_ones(finished, tmp_path):
    settings, root, results = finished
    assert set(results["prior_samples"]["by_prompt"]) == set(PROMPTS)  # real3d drew x̃ of both prompts
    table = (root / "results.md").read_text()
    assert "| x̃: the prior's own samples |" in table and "\n- real3d: " in table  # no share: a tiny prior scores 0
    copy = tmp_path / "bench"
    shutil.copytree(root / "cache", copy / "cache")
    (cube,) = [f for f in (copy / "cache").glob("*.npz") if str(np.load(f)["prompts"][0]).startswith("a red cube,")]
    scores = {}
    for shown in ("a red cube", "a blue sphere"):  # x̃ that show the prompt, and x̃ of another object
        images = (gt_views(shown) * 255 + 0.5).clamp(0, 255).byte().numpy()
        np.savez_compressed(cube, images=images, prompts=np.array([f"{shown}, front view"] * len(images)))
        scores[shown] = quality.prior_sample_scores(settings, copy)["a red cube"]
    assert scores["a red cube"] >= 0.9 and scores["a blue sphere"] <= 0.1, scores


def test_changed_config_is_refused(finished):
    settings, root, _ = finished
    changed = BenchSettings(
        settings.presets, settings.prompts, settings.seeds, steps=4, overrides=settings.overrides, evolution_every=1
    )
    with pytest.raises(UserError, match="was run with another config"):
        plan(changed, root)


def test_a_bench_folder_carries_on_in_a_clone_at_another_path(tmp_path):
    # a committed bench folder (docs/results/…) names the shipped prior by the absolute path of the checkout
    # that ran it; another checkout must take its cells, and still refuse a changed config
    settings = BenchSettings(["real3d"], ["a red cube"], [0])
    (cell,) = settings.cells()
    cfg = quality.cell_config(cell, settings)
    assert Path(cfg.prior.path) == SHIPPED
    saved = Store(tmp_path).check_config(cell, cfg).replace(str(SHIPPED), "/elsewhere/real3d/weights/embedded-prior")
    write_text(cell.folder(tmp_path) / "config.yaml", saved)
    Store(tmp_path).check_config(cell, cfg)
    with pytest.raises(UserError, match="was run with another config"):
        Store(tmp_path).check_config(cell, dataclasses.replace(cfg, steps=cfg.steps + 1))


def test_a_bench_folder_outlives_an_added_option(tmp_path):
    # a cell saved before a config key existed reads as that key's default (which keeps the old behaviour)
    settings = BenchSettings(["real3d"], ["a red cube"], [0])
    (cell,) = settings.cells()
    cfg = quality.cell_config(cell, settings)
    saved = yaml.safe_load(Store(tmp_path).check_config(cell, cfg))
    del saved["field"]["start_radius"]
    write_text(cell.folder(tmp_path) / "config.yaml", yaml.safe_dump(saved, sort_keys=False))
    quality.plan(settings, tmp_path)
    with pytest.raises(UserError, match="was run with another config"):
        Store(tmp_path).check_config(cell, dataclasses.replace(cfg, steps=cfg.steps + 1))


def test_a_bench_folder_carries_on_with_another_first_seed(tmp_path):
    # `--seeds 1,2` makes (first prompt, seed 1) the evolution cell, with snapshots; `--seeds 0,1,2` later
    # moves the evolution to seed 0: seed 1's folder must still be taken (snapshots change no result)
    before = BenchSettings(["real3d"], ["a red cube"], [1, 2])
    after = BenchSettings(["real3d"], ["a red cube"], [0, 1, 2])
    cell = before.cells()[0]
    assert before.is_evolution(cell) and not after.is_evolution(cell)
    first = quality.cell_config(cell, before)
    write_text(cell.folder(tmp_path) / "config.yaml", Store(tmp_path).check_config(cell, first))
    quality.plan(after, tmp_path)
    with pytest.raises(UserError, match="was run with another config"):
        Store(tmp_path).check_config(cell, dataclasses.replace(first, seed=7))


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--prompts", "/nonexistent/prompts.txt"], "cannot read the prompt list"),
        (["--seeds", "0,x"], "comma-separated integers"),
        (["--presets", "nope"], "unknown preset 'nope'"),
        (["--workers", "0"], "positive integer"),
        (["--evolution-prompt", "a black torus"], "not in the prompt list"),
    ],
)
def test_bad_input_is_one_line(capsys, tmp_path, argv, expected):
    code = main(["bench", "quality", "--out", str(tmp_path / "b"), *argv])
    assert code == 2 and expected in one_line(capsys.readouterr().err)
    assert not (tmp_path / "b").exists()


def test_prompt_file_with_unknown_word(capsys, tmp_path):
    (tmp_path / "p.txt").write_text("# mine\na red cube\na red cub\n")
    code = main(["bench", "quality", "--prompts", str(tmp_path / "p.txt"), "--out", str(tmp_path / "b")])
    assert code == 2 and "'cub'" in one_line(capsys.readouterr().err)


def test_a_report_of_the_bench_holds_its_tables_figures_and_every_model(finished):
    settings, root, _ = finished
    page = report.build(root)
    assert page.count('<model-viewer class="model"') == 4  # every cell wrote a vertex-coloured model.glb
    assert "<th>judge ↑</th>" in page and "<td>a blue sphere with a face</td>" in page
    for figure in ("contact-real3d", "contact-gt", "evolution"):
        assert f'alt="{figure}' in page, figure
