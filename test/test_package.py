"""Package-level rules: layering, CLI help, install metadata."""

from __future__ import annotations

import ast
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from corr_core.cli import COMMANDS, build_parser, plugin_entry_points

ROOT = Path(__file__).resolve().parent.parent
ROS_MODULES = {"rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "lifecycle_msgs", "builtin_interfaces",
               "launch", "launch_ros", "rosidl_runtime_py", "message_filters", "cv_bridge"}


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_corr_core_never_imports_ros():
    offenders = {str(p.relative_to(ROOT)): sorted(_imported_modules(p) & ROS_MODULES)
                 for p in (ROOT / "corr_core").rglob("*.py") if _imported_modules(p) & ROS_MODULES}
    assert not offenders, f"corr_core must stay ROS-free: {offenders}"


def test_importing_corr_core_loads_no_ros_module():
    code = ("import sys, corr_core.api, corr_core.cli, corr_core.data.bag, corr_core.propagation.tracker; "
            f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(ROS_MODULES)!r}); print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_subcommand_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) >= {"generate", "train", "eval", "bag", "demo"}
    plugins = {ep.name for ep in plugin_entry_points()}
    for name in sub.choices:
        assert name in COMMANDS or name in plugins
        with pytest.raises(SystemExit) as exc:
            parser.parse_args([name, "--help"])
        assert exc.value.code == 0


def test_corr_console_script_runs():
    exe = Path(sys.executable).parent / "corr"
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "train" in out.stdout


def test_package_xml_is_ament_python_format_3_named_corr():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "corr"
    assert root.find("export/build_type").text == "ament_python"
    assert (ROOT / "resource" / "corr").is_file()


def test_overrides_may_follow_options_and_stray_words_are_refused(tmp_path, capsys):
    from corr_core.cli import main

    recipe = ROOT / "training" / "fc_cpu.yaml"
    # the override after --out reaches the config loader (which names the unknown key)
    assert main(["train", str(recipe), "--out", str(tmp_path / "run"), "train.bogus=1"]) == 2
    assert "unknown key 'train.bogus'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", str(recipe), "--out", str(tmp_path / "run"), "stray"])
    assert "unrecognized arguments: stray" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("recipe", sorted((ROOT / "training").glob("*.yaml")), ids=lambda p: p.name)
def test_every_recipe_loads_and_builds_its_method(recipe):
    from corr_core.config import load_training_config
    from corr_core.methods import build_method

    cfg = load_training_config(recipe, [])
    if cfg["method"] == "pcc":  # a loop of two trained stages, each on the one trainer
        from corr_core.methods.pcc.colorize import ColourizeMethod
        from corr_core.methods.pcc.correspond import CorrespondMethod

        for stage in ("pretrain", "correspond"):
            assert cfg[stage]["train"]["iters"] > 0 and cfg[stage]["train"]["batch_size"] > 0
        model = {**cfg["model"], "encoder_init": None}  # the weights are not needed to build it
        methods = [ColourizeMethod(**model), CorrespondMethod(cfg["model"]["arch"])]
        assert all(m.arch == cfg["model"]["arch"] for m in methods) and cfg["iterations"] >= 1
        return
    assert cfg["train"]["iters"] > 0 and cfg["train"]["batch_size"] > 0
    method = build_method(cfg["method"], **cfg.get("model", {}))
    assert method.arch == cfg["model"]["arch"]
