"""The parameter files and the launch file agree with the parameters the nodes declare."""

from __future__ import annotations

import ast
import py_compile
import re
from pathlib import Path

import pytest
import yaml

pytest.importorskip("rclpy", reason="rclpy (ROS 2 Jazzy wheels) is not installed")

REPO_ROOT = Path(__file__).resolve().parent.parent
LAUNCH = REPO_ROOT / "launch" / "corr.launch.py"


def _ros_params(path: Path) -> dict:
    from corr_ros.params import flatten_yaml_params

    doc = yaml.safe_load(path.read_text())
    assert list(doc) == ["/**"], f"{path.name} must hold parameters for every node name ('/**')"
    return flatten_yaml_params(doc["/**"]["ros__parameters"])


@pytest.mark.parametrize(
    ("config", "module"),
    [("corr_node.yaml", "corr_ros.nodes.corr_node"), ("player.yaml", "corr_ros.nodes.player")],
)
def test_param_files_use_declared_parameters(config, module):
    import importlib

    specs = {s.name: s for s in importlib.import_module(module).PARAMS}
    values = _ros_params(REPO_ROOT / "config" / config)
    unknown = sorted(set(values) - set(specs))
    assert not unknown, f"config/{config} sets parameters the node does not declare: {unknown}"
    for name, value in values.items():
        assert specs[name].check(value) is None, specs[name].check(value)


def test_node_param_file_ships_the_propagation_defaults():
    from corr_core.options import PROPAGATION_OPTIONS, propagation_settings
    from corr_core.propagation.config import PropagationConfig
    from corr_ros.nodes.corr_node import PARAMS, PROPAGATION_KEYS

    values = _ros_params(REPO_ROOT / "config" / "corr_node.yaml")
    defaults = PropagationConfig()
    declared = {s.name: s.default for s in PARAMS}
    for key in PROPAGATION_KEYS:
        assert values[key] == declared[key], key
    # what the node hands to the trackers is the library's default configuration
    assert PropagationConfig(**propagation_settings({k: values[k] for k in PROPAGATION_KEYS})) == defaults
    assert propagation_settings({"long_term_radius": 6.0})["long_term_radius"] == 6.0
    assert values["slop"] == declared["slop"] == 0.05
    # the node's propagation parameters are the shared options of the command line, row for row
    specs = {s.name: s for s in PARAMS}
    assert PROPAGATION_KEYS == tuple(o.name for o in PROPAGATION_OPTIONS)
    for opt in PROPAGATION_OPTIONS:
        spec = specs[opt.name]
        assert (spec.default, spec.range, spec.live) == (opt.default, opt.range, opt.live), opt.name


def test_every_parameter_has_a_description_and_numbers_a_range():
    from rclpy.parameter import Parameter

    from corr_ros.nodes import corr_node, player, recorder

    for module in (corr_node, player, recorder):
        for spec in module.PARAMS:
            assert len(spec.description) > 10, spec.name
            if spec.type in (Parameter.Type.INTEGER, Parameter.Type.DOUBLE):
                assert spec.range is not None, f"{module.__name__}: {spec.name} has no range"
                assert spec.check(spec.default) is None, spec.name
                assert spec.check(spec.range[1] + 1) is not None, spec.name


def test_launch_file_is_consistent_with_nodes_and_configs():
    py_compile.compile(str(LAUNCH), doraise=True)
    tree = ast.parse(LAUNCH.read_text())
    scripts = set(re.findall(r'"(\w+) = corr_\w+\.[\w.]+:main"', (REPO_ROOT / "setup.py").read_text()))
    from corr_ros.nodes import corr_node, player, recorder

    params_of = {
        "corr_node": {s.name for s in corr_node.PARAMS},
        "corr_player": {s.name for s in player.PARAMS},
        "corr_recorder": {s.name for s in recorder.PARAMS},
    }
    nodes = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "Node"]
    assert len(nodes) == 3
    seen = set()
    for call in nodes:
        kw = {k.arg: k.value for k in call.keywords}
        assert ast.literal_eval(kw["package"]) == "corr"
        exe = ast.literal_eval(kw["executable"])
        assert exe in scripts, f"{exe} is not a console script in setup.py"
        seen.add(exe)
        for item in kw["parameters"].elts:
            if isinstance(item, ast.Dict):
                keys = {ast.literal_eval(k) for k in item.keys}
                assert keys <= params_of[exe], f"{exe}: launch sets undeclared {keys - params_of[exe]}"
    assert seen == set(params_of)
    # config files named in the launch file exist
    names = {
        n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and str(n.value).endswith(".yaml")
    }
    assert names == {"corr_node.yaml", "player.yaml"}
    for name in names:
        assert (REPO_ROOT / "config" / name).is_file()
    # remapped topics are the node's inputs for the cameras of the shipped config
    cameras = _ros_params(REPO_ROOT / "config" / "corr_node.yaml")["cameras"]
    remapped = {
        ast.literal_eval(t.elts[0])
        for call in nodes
        for k in call.keywords
        if k.arg == "remappings"
        for t in k.value.elts
    }
    assert remapped == {f"{c}/image_raw" for c in cameras}
