"""Every launch file, read with ``ast`` (``launch`` and ``ros2 launch`` are not installable here),
agrees with the nodes: executables, parameter files, parameter names and values, remaps, launch
arguments, and the topics the recorder records.

For each ``Node(...)`` of each ``launch/*.launch.py``:

* ``package`` is ``corr`` and ``executable`` a console script of setup.py, whose module's
  ``PARAMS`` table is what the node declares;
* every parameter file it is given (directly or as a launch argument's default) exists under
  ``config/`` and sets only declared parameters, with valid values; every inline parameter is
  declared (and valid when it is a literal);
* every remap's source is a topic the node has for the cameras of its parameter file
  (:func:`corr_ros.tracking.pipeline.camera_topics`), every camera's image topic is remapped, and
  the target is a declared launch argument;
* the recorder records topics the node publishes, with their message types.

Every ``LaunchConfiguration`` is a declared argument and every declared argument is used; every
``config/*.yaml`` is used by some launch file.
"""

from __future__ import annotations

import ast
import importlib
import py_compile
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("rclpy", reason="rclpy (ROS 2 Jazzy wheels) is not installed")

REPO_ROOT = Path(__file__).resolve().parent.parent
LAUNCH_FILES = sorted((REPO_ROOT / "launch").glob("*.launch.py"))


def _call_name(node: ast.AST) -> str:
    if isinstance(node, ast.Call):
        func = node.func
        return func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
    return ""


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if _call_name(n) == name]


def _kw(call: ast.Call) -> dict[str, ast.expr]:
    return {k.arg: k.value for k in call.keywords if k.arg}


def _launch_config(node: ast.AST) -> str | None:
    """``"x"`` for ``LaunchConfiguration("x")``."""
    if _call_name(node) == "LaunchConfiguration":
        return ast.literal_eval(node.args[0])
    return None


def _yaml_names(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and str(n.value).endswith(".yaml")]


def _scripts() -> dict[str, str]:
    """Console script -> module (setup.py)."""
    text = (REPO_ROOT / "setup.py").read_text()
    return dict(re.findall(r'"(\w+) = (corr_\w+(?:\.\w+)*):main"', text))


class LaunchFile:
    """What a launch file declares, resolved statically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tree = ast.parse(path.read_text())
        self.arguments: dict[str, ast.expr | None] = {}
        for call in _calls(self.tree, "DeclareLaunchArgument"):
            name = ast.literal_eval(call.args[0])
            assert name not in self.arguments, f"{path.name}: argument {name} declared twice"
            kw = _kw(call)
            assert "description" in kw, f"{path.name}: argument {name} has no description"
            self.arguments[name] = kw.get("default_value")
        self.used = {name for n in ast.walk(self.tree) if (name := _launch_config(n)) is not None}
        self.nodes = _calls(self.tree, "Node")
        # names bound to expressions (config_dir = PathJoinSubstitution([...]))
        self.bindings = {t.id: a.value for a in ast.walk(self.tree) if isinstance(a, ast.Assign)
                         for t in a.targets if isinstance(t, ast.Name)}

    def config_files(self, expr: ast.expr) -> list[Path]:
        """The config/*.yaml files a parameters entry names (through a launch argument's default)."""
        name = _launch_config(expr)
        if name is not None:
            default = self.arguments.get(name)
            return [] if default is None else self.config_files(default)
        if _call_name(expr) == "PathJoinSubstitution":
            parts = expr.args[0].elts
            base = parts[0]
            if isinstance(base, ast.Name):
                base = self.bindings[base.id]
            assert _call_name(base) == "PathJoinSubstitution", ast.dump(base)
            share, folder = base.args[0].elts
            assert _call_name(share) == "FindPackageShare" and ast.literal_eval(share.args[0]) == "corr"
            assert ast.literal_eval(folder) == "config"
            return [REPO_ROOT / "config" / ast.literal_eval(p) for p in parts[1:]]
        return []


def _params_of(path: Path) -> dict[str, Any]:
    from corr_ros.params import flatten_yaml_params

    doc = yaml.safe_load(path.read_text())
    assert list(doc) == ["/**"], f"{path.name} must hold parameters for every node name ('/**')"
    return flatten_yaml_params(doc["/**"]["ros__parameters"])


def _check_values(where: str, specs: dict[str, Any], values: dict[str, Any]) -> None:
    unknown = sorted(set(values) - set(specs))
    assert not unknown, f"{where} sets parameters the node does not declare: {unknown}"
    for name, value in values.items():
        if value is not None:
            assert specs[name].check(value) is None, f"{where}: {specs[name].check(value)}"


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=[p.name for p in LAUNCH_FILES])
def test_launch_file_matches_what_the_nodes_declare(path):
    from corr_ros.tracking.pipeline import SUMMARY_TOPIC, camera_topics

    py_compile.compile(str(path), doraise=True)
    launch = LaunchFile(path)
    assert "generate_launch_description" in {f.name for f in launch.tree.body if isinstance(f, ast.FunctionDef)}
    undeclared = sorted(launch.used - set(launch.arguments))
    assert not undeclared, f"{path.name} uses undeclared launch arguments {undeclared}"
    unused = sorted(set(launch.arguments) - launch.used)
    assert not unused, f"{path.name} declares arguments nothing uses: {unused}"
    scripts = _scripts()
    assert launch.nodes, f"{path.name} starts no node"
    published: dict[str, str] = {}
    recorded: list[str] = []
    for call in launch.nodes:
        kw = _kw(call)
        assert ast.literal_eval(kw["package"]) == "corr"
        exe = ast.literal_eval(kw["executable"])
        assert exe in scripts, f"{path.name}: {exe} is not a console script in setup.py"
        specs = {s.name: s for s in importlib.import_module(scripts[exe]).PARAMS}
        if "name" in kw:
            assert ast.literal_eval(kw["name"]) == exe, f"{path.name}: node {exe} renamed"
        values: dict[str, Any] = {}
        for item in kw["parameters"].elts:
            files = launch.config_files(item)
            for file in files:
                assert file.is_file(), f"{path.name} names {file}, which does not exist"
                file_values = _params_of(file)
                _check_values(f"{path.name} -> config/{file.name}", specs, file_values)
                values.update(file_values)
            if isinstance(item, ast.Dict):
                inline = {}
                for k, v in zip(item.keys, item.values, strict=True):
                    try:
                        inline[ast.literal_eval(k)] = ast.literal_eval(v)
                    except ValueError:  # a substitution: checked for being declared above
                        inline[ast.literal_eval(k)] = None
                _check_values(f"{path.name} ({exe} inline)", specs, inline)
                values.update({k: v for k, v in inline.items() if v is not None})
            elif not files:
                pytest.fail(f"{path.name}: {exe} parameters entry {ast.unparse(item)} is neither a dict nor a config file")
        remaps = {ast.literal_eval(t.elts[0]): t.elts[1] for t in getattr(kw.get("remappings"), "elts", [])}
        for target in remaps.values():
            assert _launch_config(target) in launch.arguments, f"{path.name}: remap target {ast.unparse(target)}"
        if exe == "corr_node":
            cameras = values.get("cameras", specs["cameras"].default)
            compressed = values.get("transport", "raw") == "compressed"
            topics = {t: typ for cam in cameras for t, typ in camera_topics(cam, compressed).values()}
            strange = sorted(set(remaps) - set(topics))
            assert not strange, f"{path.name}: remaps {strange} are not topics of corr_node for cameras {cameras}"
            images = {camera_topics(cam, compressed)["image"][0] for cam in cameras}
            assert images <= set(remaps), f"{path.name}: camera images {sorted(images - set(remaps))} not remapped"
            published.update({camera_topics(c)[r][0]: camera_topics(c)[r][1] for c in cameras
                              for r in ("labels", "overlay")})
            published[SUMMARY_TOPIC] = "std_msgs/msg/String"
        else:
            assert not remaps, f"{path.name}: {exe} has remaps {sorted(remaps)}"
        if exe == "corr_recorder":
            recorded += list(values.get("topics", []))
    for entry in recorded:
        topic, _, msgtype = entry.partition(":")
        assert topic in published, f"{path.name}: corr_recorder records {topic}, which corr_node does not publish"
        assert msgtype in ("", published[topic]), f"{path.name}: {topic} carries {published[topic]}, not {msgtype}"


def test_every_config_file_is_launched_and_the_rigs_have_their_cameras():
    used = {name for path in LAUNCH_FILES for name in _yaml_names(ast.parse(path.read_text()))}
    files = {p.name for p in (REPO_ROOT / "config").glob("*.yaml")}
    assert files <= used, f"config files no launch file uses: {sorted(files - used)}"
    assert _params_of(REPO_ROOT / "config" / "rig_ego_exo.yaml")["cameras"] == ["ego", "exo1"]
    assert _params_of(REPO_ROOT / "config" / "rig_three_cameras.yaml")["cameras"] == ["ego", "exo1", "exo2"]


def test_the_checks_catch_a_wrong_launch_file(tmp_path):
    """The test above fails on an undeclared parameter, a remap of a topic the node lacks, a missing
    camera remap, an undeclared argument and a recorded topic nobody publishes."""
    source = (REPO_ROOT / "launch" / "rig_three_cameras.launch.py").read_text()
    broken = {
        "undeclared parameter": source.replace('[LaunchConfiguration("params_file")]',
                                               '[LaunchConfiguration("params_file"), {"camerass": ["a"]}]'),
        "foreign remap": source.replace('("exo2/image_raw", LaunchConfiguration("exo2_image")),',
                                        '("exo2/image_raw", LaunchConfiguration("exo2_image")),\n'
                                        '            ("exo3/image_raw", LaunchConfiguration("exo2_image")),'),
        "missing camera": source.replace('            ("exo2/image_raw", LaunchConfiguration("exo2_image")),\n', ""),
        "undeclared argument": source.replace('LaunchConfiguration("bag_out")', 'LaunchConfiguration("bagout")'),
        "recorded nothing": source.replace('"exo2/labels:sensor_msgs/msg/Image"', '"exo9/labels:sensor_msgs/msg/Image"'),
    }
    for what, text in broken.items():
        assert text != source, what
        bad = tmp_path / f"{what.replace(' ', '_')}.launch.py"
        bad.write_text(text)
        with pytest.raises((AssertionError, pytest.fail.Exception)):
            test_launch_file_matches_what_the_nodes_declare(bad)
