import re

import pytest

from workbench.config import PRESET_DIR, RunConfig, load_config, parse_overrides, preset_names, read_preset
from workbench.errors import UsageError
from workbench.training import checkpoint_steps


def test_defaults_are_the_canonical_nanda_2023_run():
    cfg = load_config("nanda2023")
    # the preset departs from the defaults only in how the source code built and split things
    assert cfg == RunConfig(init="nanda2023", split_rule="nanda2023", attn_bias=False)
    assert (cfg.operation, cfg.p, cfg.frac_train, cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_mlp) == (
        "add", 113, 0.3, 128, 4, 32, 512)
    assert (cfg.lr, cfg.weight_decay, cfg.beta1, cfg.beta2, cfg.warmup_steps, cfg.epochs) == (
        1e-3, 1.0, 0.9, 0.98, 10, 40_000)


def test_every_preset_line_carries_a_reason_and_really_departs():
    defaults = RunConfig().to_dict()
    assert {"fast", "nanda2023", "tl-demo", "smoke"} <= set(preset_names())
    for name in preset_names():
        text = (PRESET_DIR / f"{name}.toml").read_text()
        for line in text.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                assert re.search(r"=\s*\S+\s+#\s*\S", line), f"{name}: no reason given on {line!r}"
        for key, value in read_preset(name).items():
            assert defaults[key] != value, f"{name}: {key} = {value!r} is the default, not a departure"


@pytest.mark.parametrize("name", ["fast", "nanda2023", "tl-demo"])
def test_presets_save_at_least_100_checkpoints_including_the_last(name):
    cfg = load_config(name)
    steps = checkpoint_steps(cfg)
    assert len(steps) >= 100 and steps[0] == 0 and steps[-1] == cfg.epochs


def test_log_spaced_checkpoints_are_dense_early():
    steps = checkpoint_steps(load_config("fast"))
    assert sum(s < 100 for s in steps) >= 15


def test_overrides_are_coerced_and_win():
    cfg = load_config("fast", parse_overrides(["epochs=20000", "lr=3e-3", "freeze_biases=true", "operation=sub"]))
    assert (cfg.epochs, cfg.lr, cfg.freeze_biases, cfg.operation) == (20000, 3e-3, True, "sub")
    assert load_config("fast", {"epochs": "1e3"}).epochs == 1000


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"learning_rate": "1"}, "unknown config key.*valid keys: operation"),
        ({"epochs": "many"}, "epochs must be a whole number"),
        ({"epochs": "2.5"}, "epochs must be a whole number"),
        ({"frac_train": "1.5"}, "frac_train must lie strictly between 0 and 1"),
        ({"operation": "pow"}, "valid operations"),
        ({"operation": "div", "p": "20"}, "prime"),
        ({"act_fn": "tanh"}, "valid: relu"),
        ({"lr": "0"}, "lr must be positive"),
        ({"beta2": "1"}, "beta2 must lie in"),
        ({"attn_rate": "1.5"}, r"attn_rate must lie in \[0, 1\]"),
        ({"attn_rate": "nan"}, r"attn_rate must be a finite number"),
    ],
)
def test_bad_config_values_are_refused_clearly(overrides, message):
    with pytest.raises(UsageError, match=message):
        load_config("fast", overrides)


def test_unknown_preset_lists_valid_ones():
    with pytest.raises(UsageError, match="valid presets: .*fast"):
        load_config("nope")
    with pytest.raises(UsageError, match="key=value"):
        parse_overrides(["epochs"])


def test_config_file_round_trip(tmp_path):
    import json

    cfg = load_config("smoke")
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cfg.to_dict()))
    assert load_config(path) == cfg
