"""floe.yaml written by a hostile or careless hand: no hang, no silent last-wins, and every
message names the key and the line (issue 11, findings 11 and 15)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from floe_core.config import FloeConfigError, parse_config
from floe_core.errors import ArtifactsError
from floe_core.yamlload import MAX_NODES, safe_load

BASE = "name: shop\ncompute: {target: duckdb}\ntransforms: [{type: dbt, path: dbt}]\n"
FLOE = Path(sys.executable).parent / "floe"


def alias_bomb(levels: int) -> str:
    """The classic: each level is nine aliases of the one before (609 bytes at 7 levels)."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ",".join([f"*a{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    text = (
        BASE + "governance:\n" + "".join("  " + line + "\n" for line in alias_bomb(7).splitlines())
    )
    began = time.monotonic()
    with pytest.raises(FloeConfigError) as info:
        parse_config(text, tmp_path / "floe.yaml")
    assert time.monotonic() - began < 2.0
    assert f"{MAX_NODES:,} values" in str(info.value)
    assert info.value.line is not None


def test_the_alias_bomb_does_not_hang_the_cli(tmp_path: Path) -> None:
    (tmp_path / "floe.yaml").write_text(alias_bomb(7) + BASE)
    result = subprocess.run(
        [str(FLOE), "validate", str(tmp_path / "floe.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "aliases" in result.stderr and "Traceback" not in result.stderr


def test_ordinary_anchors_and_merge_keys_still_work() -> None:
    text = "shared: &shared {x: 1, y: [1, 2]}\nother:\n  <<: *shared\n  z: *shared\n"
    assert safe_load(text) == {
        "shared": {"x": 1, "y": [1, 2]},
        "other": {"x": 1, "y": [1, 2], "z": {"x": 1, "y": [1, 2]}},
    }


def test_a_circular_alias_is_a_clear_error(tmp_path: Path) -> None:
    text = BASE + "observability: &loop\n  attributes: {a: b}\n  extra: *loop\n"
    with pytest.raises(FloeConfigError) as info:
        parse_config(text, tmp_path / "floe.yaml")
    assert "circular reference" in str(info.value)
    assert "recursion" not in str(info.value)


def test_deep_nesting_is_a_clear_error(tmp_path: Path) -> None:
    text = BASE + "governance: " + "[" * 20_000 + "]" * 20_000 + "\n"
    with pytest.raises(FloeConfigError, match="nested too deeply"):
        parse_config(text, tmp_path / "floe.yaml")


def test_a_duplicate_key_is_refused_at_the_second(tmp_path: Path) -> None:
    text = BASE + "observability:\n  traces: true\n  lineage: true\n  traces: false\n"
    with pytest.raises(FloeConfigError) as info:
        parse_config(text, tmp_path / "floe.yaml")
    assert info.value.line == text.count("\n")
    assert "'traces' is written twice" in str(info.value)
    assert "first on line 5" in str(info.value)


def test_a_wrong_attribute_value_names_its_key(tmp_path: Path) -> None:
    text = BASE + "observability:\n  attributes:\n    team: data\n    bad: [1]\n"
    with pytest.raises(FloeConfigError) as info:
        parse_config(text, tmp_path / "floe.yaml")
    assert info.value.field == "observability.attributes.bad"
    assert info.value.line == text.count("\n")
    assert "team" not in str(info.value)  # the key and its value, not the whole mapping


def test_an_invalid_environment_name_points_at_its_line(tmp_path: Path) -> None:
    text = BASE + "environments:\n  prod: {}\n  'bad name':\n    compute: {target: duckdb}\n"
    with pytest.raises(FloeConfigError) as info:
        parse_config(text, tmp_path / "floe.yaml")
    assert info.value.field == "environments.bad name"
    assert info.value.line == 6
    assert "(document)" not in str(info.value)


def test_a_deleted_profiles_dir_says_run_floe_compile(example_dir: Path) -> None:
    import shutil

    from floe_dagster.assets import build_resource
    from floe_dbt.compile import compile_floe

    artifacts = compile_floe(example_dir / "floe.yaml", output_dir=example_dir / ".floe")
    shutil.rmtree(artifacts.dbt_profiles_path)
    with pytest.raises(ArtifactsError, match="run `floe compile`"):
        build_resource(artifacts)
