from pathlib import Path

import pytest

from real3d import config as config_lib
from real3d.cli import main
from real3d.jobs.fit import FitConfig


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    "args, expected",
    [
        (["renderer.num_sample=48"], "unknown config key 'renderer.num_sample': did you mean num_samples?"),
        (["renderer.num_samples=abc"], "renderer.num_samples: expected an integer, got 'abc'"),
        (["renderer.num_samples=0"], "renderer.num_samples: must be between 2 and 1024, got 0"),
        (["renderer_type=raytracer"], "renderer_type: unknown renderer 'raytracer'; choose one of:"),
        (["--preset", "no-such-preset"], "unknown preset 'no-such-preset'; presets: "),
        (["--no-such-option=1"], "unrecognized arguments: --no-such-option=1"),
        (["camera.elevation_range=[60,10]"], "camera.elevation_range: expected [low, high] with low <= high"),
        (["shading.probs.glossy=1.0"], "shading.probs: unknown shading mode 'glossy'"),
        (["optimizer.lr"], "override 'optimizer.lr' must look like key.subkey=value"),
    ],
)
def test_bad_config_gives_one_line_and_exit_2(capsys, tmp_path: Path, args, expected):
    out = tmp_path / "run"
    code, err = run_cli(capsys, "fit", "--out", str(out), *args)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("real3d: error: "), err
    assert expected in err
    assert not out.exists()  # nothing half-written


def test_unreadable_yaml_names_file_and_line(capsys, tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: 10\nrenderer:\n  num_samples: [1, 2\n")
    code, err = run_cli(capsys, "fit", "--config", str(bad), "--out", str(tmp_path / "o"))
    assert code == 2 and err.count("\n") == 1
    assert f"cannot parse config file {bad} line 4" in err


def test_existing_output_folder_needs_overwrite(capsys, tmp_path: Path):
    (tmp_path / "keep.txt").write_text("user data")
    code, err = run_cli(capsys, "fit", "--out", str(tmp_path))
    assert code == 2 and "already exists; pass --overwrite" in err
    assert (tmp_path / "keep.txt").read_text() == "user data"


def test_resolved_config_round_trips(tmp_path: Path):
    cfg = config_lib.load(FitConfig, "fit", ["renderer.num_samples=48", "seed=7", "background_type=mlp"])
    config_lib.save(cfg, tmp_path / "config.yaml")
    again = config_lib.load(FitConfig, str(tmp_path / "config.yaml"))
    assert again == cfg and again.renderer.num_samples == 48 and again.background.hidden == 16


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "fit" in out and "bench" in out


def test_exponent_without_a_dot_is_a_number():
    """YAML 1.1 reads `2e-2` as a string; a float field takes it as the number users mean."""
    from real3d.jobs.generate import GenerateConfig

    cfg = config_lib.load(GenerateConfig, "real3d", ["optimizer.lr=2e-2", "sds.grad_clip=1E3"])
    assert cfg.optimizer.lr == 0.02 and cfg.sds.grad_clip == 1000.0
    with pytest.raises(config_lib.ConfigError, match="optimizer.lr: expected a number"):
        config_lib.load(GenerateConfig, "real3d", ["optimizer.lr=fast"])


def test_an_albedo_range_must_be_ordered_and_within_0_1():
    from real3d.jobs.generate import GenerateConfig

    cfg = config_lib.load(GenerateConfig, "real3d", ["field.albedo_range=[0.05,0.98]"])
    assert cfg.field.albedo_range == [0.05, 0.98]
    with pytest.raises(config_lib.ConfigError, match=r"field.albedo_range: expected \[lo, hi\] with lo < hi"):
        config_lib.load(GenerateConfig, "real3d", ["field.albedo_range=[0.5,0.2]"])
    with pytest.raises(config_lib.ConfigError, match="field.albedo_range: must be between 0.0 and 1.0"):
        config_lib.load(GenerateConfig, "real3d", ["field.albedo_range=[0.5,1.2]"])


def test_rescale_steps_keeps_the_shape_of_every_schedule():
    from real3d.jobs.generate import GenerateConfig

    cfg = config_lib.load(GenerateConfig, "magic3d", [])  # 600 steps, a switch at step 300
    short = config_lib.rescale_steps(cfg, 150)
    assert short.steps == 150 and short.sds.anneal_steps == 150
    assert short.system.p_nerf == [75, 1.0, 0.0, 75] and short.system.p_dmtet == [75, 0.0, 1.0, 75]
    assert short.optimizer == cfg.optimizer and short.run == cfg.run  # nothing else moves
    real3d = config_lib.rescale_steps(config_lib.load(GenerateConfig, "real3d", []), 200)
    assert real3d.system.p_nerf == [0, 1.0, 0.3, 200]


def test_a_budget_rescales_the_preset_and_keeps_what_derived_presets_change():
    from real3d.jobs.generate import GenerateConfig

    def load(preset: str, budget: str | None = None, overrides: list[str] | None = None) -> GenerateConfig:
        return config_lib.load(GenerateConfig, preset, overrides or [], budget)

    real3d = load("real3d", "quality")
    assert real3d.steps == 4000 and real3d.sds.anneal_steps == 4000 and real3d.reference.count == 1000
    assert real3d.system.p_nerf == [0, 1.0, 0.2, 4000] and real3d.system.p_dmtet == [0, 0.2, 1.0, 4000]
    assert real3d.explicit.grid_resolution == 64 and real3d.run.texture_size == 1024
    magic = load("magic3d", "quality")  # its own switch, rescaled with the budget: half way
    assert magic.system.p_nerf == [2000, 1.0, 0.0, 2000] and magic.system.lambda_adv == 0.0
    assert load("dreamfusion", "quality").system.p_nerf == 1.0  # what the derived preset sets wins
    assert load("dreamfusion-quality") == load("dreamfusion", "quality")  # the old preset names still work
    sd = load("real3d-sd")  # a preset may name its budget; --budget fast takes it back to the written one
    assert sd.steps == 4000 and sd.reference.count == 100 and load("real3d-sd", "fast").steps == 600
    assert load("real3d", "quality", ["steps=10", "reference.count=3"]).reference.count == 3  # overrides last
    assert load("real3d", "fast") == load("real3d")
    with pytest.raises(config_lib.ConfigError, match="unknown budget 'huge'; budgets: fast, quality"):
        load("real3d", "huge")
    with pytest.raises(config_lib.ConfigError, match="each also with a budget as NAME-BUDGET"):
        load("real3d-huge")


def test_budget_flag_on_the_command_line(capsys):
    assert main(["generate", "a red cube", "--budget", "enormous"]) == 2
    assert "argument --budget: invalid choice: 'enormous'" in capsys.readouterr().err


def test_a_key_that_needs_another_section_says_which(capsys):
    """Appearance TV has nothing to smooth without appearance channels: one line, not a silent no-op."""
    assert main(["generate", "a red cube", "regularizers.lambda_appearance_tv=300"]) == 2
    assert "set field.appearance_channels (e.g. 4)" in capsys.readouterr().err
    from real3d.jobs.generate import GenerateConfig

    both = ["regularizers.lambda_appearance_tv=300", "field.appearance_channels=4"]
    assert config_lib.load(GenerateConfig, "real3d", both).field.appearance_channels == 4
    # the level fit (on in the preset) has no NeRF to follow with another main renderer
    assert main(["generate", "a red cube", "renderer_type=dmtet"]) == 2
    assert "add system.fit_level_every=0" in capsys.readouterr().err
    plain = ["renderer_type=dmtet", "system.fit_level_every=0"]
    assert config_lib.load(GenerateConfig, "real3d", plain).system.fit_level_every == 0
    assert config_lib.load(GenerateConfig, "real3d").system.fit_level_every == 50


def test_loss_weights_take_a_schedule_and_refuse_a_negative_value():
    """λ_adv and λ_plane_tv may ramp ([start_step, start_value, end_value, end_step]); D takes part when λ_adv
    is above 0 anywhere in its schedule, and a weight below 0 anywhere is a one-line error."""
    from real3d.config import scheduled
    from real3d.jobs.generate import GenerateConfig

    cfg = config_lib.load(GenerateConfig, "real3d", ["system.lambda_adv=[0,0.0,0.01,200]"])
    assert cfg.system.uses_discriminator and scheduled(cfg.system.lambda_adv, 100) == pytest.approx(0.005)
    assert not config_lib.load(GenerateConfig, "dreamfusion", []).system.uses_discriminator
    for key in ("system.lambda_adv", "regularizers.lambda_plane_tv"):
        with pytest.raises(config_lib.ConfigError, match=f"{key}: every value must be >= 0.0"):
            config_lib.load(GenerateConfig, "real3d", [f"{key}=[0,-1.0,0.01,200]"])
        with pytest.raises(config_lib.ConfigError, match=f"{key}: expected a number or"):
            config_lib.load(GenerateConfig, "real3d", [f"{key}=[300,0.0,0.01,200]"])


def test_renderer_probabilities_outside_0_to_1_are_a_one_line_error():
    """p_nerf, p_dmtet and p_local are probabilities: a value above 1 or below 0, constant or anywhere in a
    schedule, names the key; the presets' own schedules pass."""
    from real3d.jobs.generate import GenerateConfig

    for preset in ("real3d", "dreamfusion", "magic3d"):
        config_lib.load(GenerateConfig, preset, [])
    for key, bad, message in (
        ("system.p_nerf", "1.5", "<= 1.0"),
        ("system.p_dmtet", "[0,0.2,2.0,600]", "<= 1.0"),
        ("system.p_local", "-0.1", ">= 0.0"),
    ):
        with pytest.raises(config_lib.ConfigError, match=f"{key}: every value must be {message}"):
            config_lib.load(GenerateConfig, "real3d", [f"{key}={bad}"])


def test_a_wrong_type_names_the_type_in_words():
    """A value of the wrong type says what the key takes, in plain words ("a list of numbers"); a non-finite
    number in a key that takes a number or a schedule says it is not finite."""
    from real3d.jobs.generate import GenerateConfig

    for override, message in (
        ("camera.fovy_range=abc", "camera.fovy_range: expected a list of numbers, got 'abc'"),
        ("sds.guidance_scale=abc", "sds.guidance_scale: expected a number or a list of numbers, got 'abc'"),
        ("system.lambda_adv=.inf", "system.lambda_adv: expected a finite number, got inf"),
        ("system.p_nerf=[0,.nan,0.3,600]", "system.p_nerf[1]: expected a finite number, got nan"),
    ):
        with pytest.raises(config_lib.ConfigError) as e:
            config_lib.load(GenerateConfig, "real3d", [override])
        assert str(e.value) == message
