"""Reading the YAML floe owns (floe.yaml, openlineage.yml) without the traps of the format.

``yaml.safe_load`` constructs no objects, but it still expands aliases: a 609-byte "billion
laughs" document of nested aliases makes a structure of millions of values that every later walk
(validation, the literal-secret check, compiled_artifacts.json) pays for, and an alias inside its
own anchor makes a structure that contains itself. It also lets a key repeat, the last one
silently winning. :func:`safe_load` composes the node graph first (aliases share nodes there, so
nothing is expanded), then refuses, with the line:

- a key written twice in one mapping (``<<`` merge keys aside);
- an alias that refers to a node containing it (a circular reference);
- a document whose aliases would expand to more than :data:`MAX_NODES` values. floe.yaml holds
  tens or hundreds; anchors and aliases that share a block of settings stay far below it.

and only then constructs the data, with yaml's SafeLoader.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.error import Mark

__all__ = ["MAX_NODES", "YamlShapeError", "safe_load"]

#: The most values a document may expand to, aliases counted as often as they are used.
MAX_NODES = 100_000

_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlShapeError(yaml.MarkedYAMLError):
    """A YAML document refused for its shape (duplicate key, circular alias, alias bomb)."""

    def __init__(self, problem: str, mark: Mark | None) -> None:
        super().__init__(problem=problem, problem_mark=mark)


def safe_load(text: str, *, max_nodes: int = MAX_NODES) -> Any:
    """``yaml.safe_load(text)``, refusing what the module docstring lists."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check(node, max_nodes)
        return loader.construct_document(node)
    except RecursionError:
        # yaml's composer and constructor recurse per nesting level.
        raise YamlShapeError("the document is nested too deeply", None) from None
    finally:
        loader.dispose()


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check(root: yaml.Node, max_nodes: int) -> None:
    """Duplicate keys, cycles and the expanded size, in one iterative walk (no recursion, so a
    deeply nested document cannot exhaust the stack either)."""
    sizes: dict[int, int] = {}  # id(node) -> values it expands to
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            open_nodes.discard(key)
            size = 1 + sum(sizes[id(child)] for child in _children(node))
            if size > max_nodes:
                raise YamlShapeError(
                    f"the document expands to more than {max_nodes:,} values through its "
                    "aliases (*name); write the repeated settings out, or share fewer levels",
                    node.start_mark,
                )
            sizes[key] = size
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise YamlShapeError(
                "an alias refers to a block that contains it (a circular reference)",
                node.start_mark,
            )
        open_nodes.add(key)
        if isinstance(node, yaml.MappingNode):
            _refuse_duplicate_keys(node)
        stack.append((node, True))
        for child in reversed(_children(node)):
            if id(child) in open_nodes:
                raise YamlShapeError(
                    "an alias refers to a block that contains it (a circular reference)",
                    child.start_mark,
                )
            if id(child) not in sizes:
                stack.append((child, False))


def _refuse_duplicate_keys(node: yaml.MappingNode) -> None:
    seen: dict[tuple[str, str], int] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
            continue
        ident = (key_node.tag, key_node.value)
        first = seen.get(ident)
        if first is not None:
            raise YamlShapeError(
                f"key {key_node.value!r} is written twice in one mapping (first on line "
                f"{first}); keep one",
                key_node.start_mark,
            )
        seen[ident] = key_node.start_mark.line + 1
