"""Issue #20, case by case: every input that once gave a traceback or a silently wrong run, as a user types it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from real3d.cli import main
from tests.test_generate import one_line, tiny


def error_line(err: str) -> str:
    """The error line of a run that printed progress bars before it stopped (and no traceback)."""
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("real3d: error: "), err
    return last


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_overwrite_starts_from_an_empty_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    base = ["generate", "a red cube", "--out", str(out), *tiny(tmp_path)]
    assert run(capsys, *base, "steps=6", "run.snapshot_every=3")[0] == 0
    assert (out / "snapshots").exists()
    # a bad setting fails before anything is touched: the old run stays whole
    code, _, err = run(capsys, *base, "--overwrite", "steps=4", "optimizer.lr=.inf")
    assert code == 2 and "optimizer.lr: expected a finite number, got inf" in one_line(err)
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 6
    code, out_text, _ = run(capsys, *base, "--overwrite", "steps=4")
    assert code == 0 and "rolled back" not in out_text
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 4  # its own, not the old run's
    assert not (out / "snapshots").exists() and not (tmp_path / ".run.replaced").exists()
    steps = [json.loads(line)["step"] for line in (out / "train.log").read_text().splitlines()]
    assert steps == sorted(set(steps)) and max(steps) == 4  # each step once, none of the old run's


@pytest.mark.parametrize(
    "override, words",
    [
        ("reference.guidance_scale=.nan", "reference.guidance_scale: expected a finite number, got nan"),
        ("optimizer.lr=.nan", "optimizer.lr: expected a finite number"),
        ("optimizer.lr=1e309", "optimizer.lr: expected a finite number, got inf"),
        ("sds.guidance_scale=-.inf", "sds.guidance_scale: expected a finite number"),
    ],
)
def test_non_finite_numbers_are_refused(
    capsys: pytest.CaptureFixture, tmp_path: Path, override: str, words: str
) -> None:
    code, _, err = run(capsys, "generate", "a red cube", "--out", str(tmp_path / "r"), override)
    assert code == 2 and words in one_line(err) and not (tmp_path / "r").exists()


def test_an_emoji_in_the_prompt_runs(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["generate", "a red cube 🚀", "--out", str(out), *tiny(tmp_path), "steps=2"]) == 0
    assert json.loads((out / "metrics.json").read_text())["prompt"] == "a red cube 🚀"


def test_a_full_disk_is_one_line_and_keeps_the_last_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    out, real_save, calls = tmp_path / "run", torch.save, []

    def save(obj: object, f: object, *args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 3:  # the checkpoint of step 6: torch's writer fails as on a full disk
            raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 4160 vs 4048")
        real_save(obj, f, *args, **kwargs)

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(torch, "save", save)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=4096))
    code, _, err = run(capsys, "generate", "a red cube", "--out", str(out), *tiny(tmp_path), "steps=9")
    assert code == 2 and "no space left on the disk" in error_line(err) and "checkpoint.pt is kept" in err
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 3  # the last good one, whole
    assert not list(out.glob(".*.tmp*"))


def test_export_takes_a_run_folder(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["generate", "a red cube", "--out", str(out), *tiny(tmp_path), "steps=2"]) == 0
    assert main(["export", str(out), "--out", str(tmp_path / "e"), "--grid", "32", "--texture-size", "32",
                 "--frames", "2", "--frame-size", "32"]) == 0  # fmt: skip
    assert (tmp_path / "e" / "mesh.glb").stat().st_size > 0


@pytest.mark.parametrize(
    "argv, words",
    [
        (["sample", "a red cube", "-n", "0", "--out", "OUT"], "argument -n: expected an integer from 1 to 1024"),
        (["sample", "a majestic dragon", "--out", "OUT"], "unknown word 'majestic'"),
        (["sample", "", "--out", "OUT"], "the prompt is empty"),
        (["generate", "a red cube", "--seed", str(2**70)], "argument --seed: expected an integer from 0 to"),
        (["generate", "a red cube", "--seeds", "1," + "9" * 30], "expected comma-separated integers"),
        (["toyworld", "show", "a red cube", "--out", "OUT", "--fovy", "nan"], "expected a finite number"),
        (["export", "OUT", "--out", "OUT2"], "no checkpoint at"),
        (["generate", "--resume", "OUT"], "holds no config.yaml"),
        (["generate", "a red \x00cube\x1b[31m"], "unknown word"),
        (["generate", "a red cube", "prompt_back=a red dragon"], "unknown word 'dragon'"),
    ],
)
def test_bad_arguments_are_one_line(capsys: pytest.CaptureFixture, tmp_path: Path, argv: list[str], words: str) -> None:
    code, _, err = run(capsys, *[a.replace("OUT", str(tmp_path / "o")) for a in argv])
    assert code == 2 and words in one_line(err) and "\x00" not in err and "\x1b" not in err


def test_a_flying_car_gets_no_far_fetched_suggestion(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    code, _, err = run(capsys, "toyworld", "show", "a flying car", "--out", str(tmp_path))
    assert code == 2 and "unknown word 'flying'" in err and "did you mean" not in err
    code, _, err = run(capsys, "toyworld", "show", "a red cbue", "--out", str(tmp_path))
    assert code == 2 and "did you mean cube" in err  # a typo still gets one


def test_a_long_prompt_is_cut_in_the_message(capsys: pytest.CaptureFixture) -> None:
    code, _, err = run(capsys, "generate", "a red " + "x" * 10_000)
    assert code == 2 and len(one_line(err)) < 400 and "[…]" in err


def test_an_empty_config_file_is_the_default_preset(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    partial = tmp_path / "partial.yaml"
    partial.write_text("renderer:\n  num_samples: 24\n")
    code, text, _ = run(capsys, "generate", "a red cube", "--config", str(empty), "--print-config")
    code_p, text_p, _ = run(capsys, "generate", "a red cube", "--config", str(partial), "--print-config")
    _, preset, _ = run(capsys, "generate", "a red cube", "--print-config")
    assert code == code_p == 0 and text == preset and "num_samples: 48" in preset  # the real3d preset's
    assert text_p == preset.replace("num_samples: 48", "num_samples: 24")


def test_broken_weights_name_the_file(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    from real3d.priors.embedded import SHIPPED

    for name, junk in [("config.json", "{not json"), ("diffusion_pytorch_model.safetensors", "junk")]:
        folder = tmp_path / name
        folder.mkdir()
        for f in SHIPPED.iterdir():
            (folder / f.name).write_bytes(f.read_bytes())
        (folder / name).write_text(junk)
        code, _, err = run(capsys, "sample", "a red cube", "--weights", str(folder), "--out", str(tmp_path / "s"))
        assert code == 2 and f"{folder / name}" in one_line(err)
    sd = tmp_path / "sd"
    for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        (sd / part).mkdir(parents=True)
        (sd / part / "config.json").write_text("junk")
    (sd / "model_index.json").write_text("{}")
    code, _, err = run(capsys, "generate", "a red cube", "prior_type=stable-diffusion", f"prior.path={sd}",
                       "--print-config")  # fmt: skip
    assert code == 2 and f"cannot load {sd / 'unet'}" in one_line(err)


def test_an_internal_error_shows_its_traceback_and_says_it_is_a_bug(
    capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from real3d.jobs import info

    monkeypatch.setattr(info, "machine_report", lambda: 1 / 0)
    code, _, err = run(capsys, "info")
    assert code == 1 and "Traceback" in err and "ZeroDivisionError" in err
    assert err.strip().splitlines()[-1].startswith("real3d: internal error (ZeroDivisionError): a bug in real3d")
