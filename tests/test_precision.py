"""real3d.precision: `auto` follows what the CPU does natively; fp32 and bf16 agree within a stated tolerance."""

import re

import pytest
import torch

from real3d import config as config_lib
from real3d import precision
from real3d.cli import main
from real3d.errors import ConfigError
from real3d.field import TriplaneField
from real3d.jobs.fit import FitConfig, fit

EMULATED = precision.Probe(fp32_gflops=118.0, bf16_gflops=1.0)  # an AVX2-only CPU, as measured there
NATIVE = precision.Probe(fp32_gflops=197.0, bf16_gflops=436.0)  # avx512_bf16, as measured there


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch):
    """Fake the probe (and the flags, so that it is consulted) and count its calls."""
    calls = []

    def use(result: precision.Probe) -> list[int]:
        monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx2", "avx512_bf16"})
        monkeypatch.setattr(precision, "probe", lambda: calls.append(1) or result)
        precision._warn_emulated.cache_clear()
        return calls

    yield use
    precision._warn_emulated.cache_clear()


def test_auto_picks_fp32_where_the_probe_measures_bf16_slow(probe) -> None:
    probe(EMULATED)
    assert precision.resolve("auto") == torch.float32
    with precision.use("auto"), precision.autocast():
        assert torch.nn.Linear(8, 8)(torch.randn(4, 8)).dtype == torch.float32


def test_auto_picks_bf16_where_the_probe_measures_it_faster(probe) -> None:
    calls = probe(NATIVE)
    assert precision.resolve("auto") == torch.bfloat16
    with precision.use("auto"), precision.autocast():
        y = torch.nn.Linear(8, 8)(torch.randn(4, 8))
    assert y.dtype == torch.bfloat16 and calls


def test_fp32_never_probes_and_the_margin_keeps_a_tie_in_fp32(probe) -> None:
    calls = probe(precision.Probe(100.0, 110.0))  # bf16 10 % faster: under the 1.25× margin
    assert precision.resolve("fp32") == torch.float32 and not calls
    assert precision.resolve("auto") == torch.float32


def test_flags_without_a_native_unit_rule_bf16_out_without_measuring(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx2", "fma"})
    precision.probe.cache_clear()
    try:
        assert precision.probe() == precision.Probe(None, None)
        assert not precision.probe().bf16_faster
    finally:
        precision.probe.cache_clear()
    assert precision.native_bf16({"avx512_bf16"}) and precision.native_bf16({"asimd", "bf16"})
    assert precision.native_bf16(None) is None


def test_forced_bf16_on_an_emulating_cpu_runs_and_warns_once(probe, capsys: pytest.CaptureFixture) -> None:
    probe(EMULATED)
    with precision.use("bf16"):
        assert precision.resolve() == torch.bfloat16
        precision.resolve()
    err = capsys.readouterr().err
    assert err.count("real3d: warning:") == 1 and "no native bfloat16" in err and len(err.splitlines()) == 1


def test_forced_bf16_where_native_is_silent(probe, capsys: pytest.CaptureFixture) -> None:
    probe(NATIVE)
    with precision.use("bf16"):
        precision.resolve()
    assert capsys.readouterr().err == ""


def test_a_bad_precision_is_a_one_line_config_error(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ConfigError, match="precision: expected one of auto, fp32, bf16"):
        config_lib.load(FitConfig, "fit", ["precision=fp16"])
    assert main(["train-prior", "--precision", "fp16"]) == 2
    assert "invalid choice: 'fp16'" in capsys.readouterr().err
    assert main(["sample", "a red cube", "--out", "unused", "--fp32", "--precision", "bf16"]) == 2
    assert "--fp32 and --precision bf16 contradict" in capsys.readouterr().err


def test_the_field_follows_the_mode_and_agrees_across_precisions() -> None:
    torch.manual_seed(0)
    field = TriplaneField(TriplaneField.Config(resolution=16))
    x = torch.rand(512, 3) * 2 - 1
    with precision.use("fp32"):
        sigma32, rgb32 = field(x)
    with precision.use("bf16"):
        sigma16, rgb16 = field(x)
    assert sigma32.dtype == sigma16.dtype == torch.float32  # outputs stay fp32 either way
    assert not torch.equal(sigma32, sigma16)  # bf16 really ran
    torch.testing.assert_close(sigma16, sigma32, rtol=0.02, atol=0.02)
    torch.testing.assert_close(rgb16, rgb32, rtol=0.0, atol=0.01)


def test_a_fixed_seed_fit_gives_the_same_result_in_fp32_and_bf16() -> None:
    """Tolerance: held-out PSNR within 1 dB after 40 steps (bf16 rounding moves the path, not the result)."""
    overrides = [
        "steps=40",
        "image_size=16",
        "train_views=4",
        "test_views=2",
        "renderer.num_samples=16",
        "field.resolution=16",
        "seed=0",
    ]
    scores = {
        m: fit(config_lib.load(FitConfig, "fit", [*overrides, f"precision={m}"]), progress=False)["psnr_test"]
        for m in ("fp32", "bf16")
    }
    assert abs(scores["fp32"] - scores["bf16"]) < 1.0, scores
    assert scores["fp32"] > 12.0, scores  # it did learn: a blank white guess scores about 8 dB


def test_info_reports_the_machine_and_the_auto_choice(capsys: pytest.CaptureFixture) -> None:
    assert main(["info", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    for key in (
        "torch",
        "cpu capability",
        "cpu flags",
        "matmul 1024²",
        "precision auto",
        "cuda",
        "nvdiffrast",
        "weights: embedded prior",
        "weights: stable diffusion",
    ):
        assert key in out, key
    auto = precision.name(precision.resolve("auto"))
    assert re.search(rf"^precision auto +: {auto}$", out, re.M), out


def test_measuring_the_matmul_rate_leaves_the_global_rng_alone() -> None:
    # the probe runs on first use of `auto`, inside a seeded run: it must not change what the run draws
    state = torch.get_rng_state()
    precision.matmul_gflops(torch.float32, 64)
    assert torch.equal(state, torch.get_rng_state())
