"""The project's import graph has no cycle, module by module (docs/architecture.md)."""

from __future__ import annotations

import graphlib

import grimp

PACKAGES = ("cli", "api", "agents", "workflows", "services", "models", "utils")


def project_import_graph() -> dict[str, set[str]]:
    """Each project module and the project modules it imports (at any point in the file)."""
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    return {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}


def test_the_import_graph_has_no_cycle() -> None:
    edges = project_import_graph()
    assert len(edges) > 80  # the whole project was found, not an empty graph
    try:
        order = list(graphlib.TopologicalSorter(edges).static_order())
    except graphlib.CycleError as exc:
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from exc
    assert set(order) >= set(edges)


def test_a_cycle_would_be_found() -> None:
    edges = project_import_graph()
    edges["models.domain"] = {*edges["models.domain"], "services.drafting.guarded"}
    try:
        graphlib.TopologicalSorter(edges).prepare()
    except graphlib.CycleError:
        return
    raise AssertionError("a planted cycle went unnoticed")
