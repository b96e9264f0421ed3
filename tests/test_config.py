import pytest

from pipeline.config import Config, apply_overrides, config_from_dict, config_to_dict, save_config
from pipeline.recipe import load_config
from tests.helpers import REPO_ROOT


def test_overrides_are_typed():
    config = apply_overrides(
        Config(), ["lr=1e-3", "epochs=3", "balanced_sampler=true", "fold=2", "model=ast_tiny", "betas=0.9,0.98"]
    )
    assert config.lr == 1e-3 and isinstance(config.lr, float)
    assert config.epochs == 3 and config.balanced_sampler is True and config.fold == 2
    assert config.model == "ast_tiny" and config.betas == (0.9, 0.98)


def test_unknown_key_and_bad_type_are_errors():
    with pytest.raises(ValueError, match="unknown config key 'lrr'"):
        apply_overrides(Config(), ["lrr=1"])
    with pytest.raises(ValueError, match="expected an integer"):
        apply_overrides(Config(), ["epochs=many"])
    with pytest.raises(ValueError, match="key=value"):
        apply_overrides(Config(), ["epochs"])


def test_yaml_round_trip(tmp_path):
    config = apply_overrides(Config(), ["lr=2e-4", "freqm=24", "norm_mean=-5.5"])
    save_config(config, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again == config
    assert config_from_dict(config_to_dict(config)) == config


def test_front_end_prefers_explicit_stats_then_dataset_stats():
    stats = {"norm_mean": -3.0, "norm_std": 2.0}
    assert Config().front_end(stats).norm_mean == -3.0
    assert apply_overrides(Config(), ["norm_mean=-1.0"]).front_end(stats).norm_mean == -1.0
    assert Config(n_mels=64).front_end(stats).n_mels == 64


def test_a_run_with_no_statistics_is_refused_with_the_command_to_make_them():
    # no recipe values and no dataset.json stats: not another dataset's numbers in silence
    from pipeline.config import MissingNormStats

    with pytest.raises(MissingNormStats, match=r"dataset 'mine'.*run `make norm-stats DATASET=mine`"):
        Config(dataset="mine").front_end({})
    with pytest.raises(MissingNormStats):
        Config(norm_mean=-4.0).front_end({})  # a mean without a std is no statistics either


def test_shipped_recipes_load():

    for recipe in REPO_ROOT.glob("configs/*.yaml"):
        load_config(recipe)


@pytest.mark.parametrize("text", ["1e9", "2.0", "1.5"])
def test_integer_keys_take_digits_only(text):
    """epochs=1e9 was one billion epochs while batch_size=1.5 was refused: an integer key now takes
    an integer written in digits, and every float notation is refused the same way."""
    for key in ("epochs", "batch_size"):
        with pytest.raises(ValueError, match=f"override {key}='{text}': expected an integer written in digits"):
            apply_overrides(Config(), [f"{key}={text}"])
    assert apply_overrides(Config(), ["epochs=12", "batch_size=+4"]).epochs == 12


def test_a_recipe_with_a_float_integer_or_a_python_tag_is_refused_naming_the_file(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("epochs: 1e9\n")  # YAML 1.1 reads this as a string
    with pytest.raises(ValueError, match=f"{recipe}: override epochs='1e9'"):
        load_config(recipe)
    marker = tmp_path / "marker"
    recipe.write_text(f"epochs: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ValueError) as caught:
        load_config(recipe)
    assert str(caught.value).startswith(f"{recipe}: line 1: not a valid recipe: could not determine a constructor")
    assert not marker.exists()
