"""Nested graphs (the bodies of If, Loop and Scan): walking every scope, renaming a tensor's uses,
and inlining an If whose condition is constant.

A body may read any tensor of the scopes around it by name (outer-scope values), so a rewrite of
one graph that renames or moves tensors must look into the bodies of its nodes too: that is what
onnxoptimizer's eliminate_if_with_const_cond misses (docs/containers.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import onnx
from onnx import helper, numpy_helper


def bodies(node: onnx.NodeProto) -> list[tuple[str, onnx.GraphProto]]:
    """The node's subgraphs by attribute name (then_branch, else_branch, body)."""
    found = []
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            found.append((attr.name, attr.g))
        elif attr.type == onnx.AttributeProto.GRAPHS:
            found += [(attr.name, g) for g in attr.graphs]
    return found


def walk(graph: onnx.GraphProto) -> Iterator[tuple[onnx.GraphProto, onnx.NodeProto]]:
    """Every node of every scope with the graph holding it: a node, then the nodes of its bodies."""
    for node in graph.node:
        yield graph, node
        for _, body in bodies(node):
            yield from walk(body)


def scopes(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """The graph and every body nested in it."""
    yield graph
    for _, node in walk(graph):
        yield from (body for _, body in bodies(node))


def initializers(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    """The initializers of every scope by name (bodies may hold their own)."""
    return {init.name: init for graph in scopes(model.graph) for init in graph.initializer}


def rename_uses(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Read `new` wherever `graph` (or a body in it) reads `old`: node inputs and graph outputs."""
    for scope in scopes(graph):
        for node in scope.node:
            for i, name in enumerate(node.input):
                if name == old:
                    node.input[i] = new
        for value in scope.output:
            if value.name == old:
                value.name = new


def undefined_read(graph: onnx.GraphProto, outer: frozenset[str] = frozenset()) -> str | None:
    """Where `graph` first reads a tensor that nothing defines before it, in its scope or the scopes
    around it (a body sees the outer tensors computed before its node): a broken rewrite; None if none."""
    known = set(outer) | {v.name for v in graph.input} | {i.name for i in graph.initializer}
    for node in graph.node:
        missing = next((name for name in node.input if name and name not in known), None)
        if missing is not None:
            return f"node '{node.name or node.op_type}' reads '{missing}', which nothing computes before it"
        for _, body in bodies(node):
            problem = undefined_read(body, frozenset(known))
            if problem is not None:
                return problem
        known.update(node.output)
    missing = next((v.name for v in graph.output if v.name not in known), None)
    return None if missing is None else f"graph '{graph.name}' outputs '{missing}', which nothing computes"


def defined(graph: onnx.GraphProto) -> set[str]:
    """The names one scope defines (its inputs, initializers and node outputs; not its bodies')."""
    return ({v.name for v in graph.input} | {i.name for i in graph.initializer}
            | {name for node in graph.node for name in node.output if name})


def inline_constant_ifs(graph: onnx.GraphProto) -> int:
    """Replace each If of `graph` whose condition is an initializer by the nodes of the branch it
    takes; count them. The branch's nodes keep their names, the bodies inside them keep reading the
    branch's tensors, and the branch's outputs take the If's output names. A branch name that is
    also defined elsewhere in the model (a body may shadow outer names; onnxoptimizer's constants do)
    is renamed first."""
    inits = {init.name: init for init in graph.initializer}
    taken = {name for scope in scopes(graph) for name in defined(scope)}
    inlined, nodes = 0, []
    for node in graph.node:
        cond = inits.get(node.input[0]) if node.op_type == "If" and node.domain in ("", "ai.onnx") else None
        if cond is None or numpy_helper.to_array(cond).size != 1:
            nodes.append(node)
            continue
        branch = dict(bodies(node))["then_branch" if numpy_helper.to_array(cond).item() else "else_branch"]
        outside = Counter(name for scope in scopes(graph) for name in defined(scope))
        outside.subtract(name for _, body in bodies(node) for scope in scopes(body) for name in defined(scope))
        for name in sorted(n for n in defined(branch) if outside[n] > 0):
            rename_definition(branch, name, fresh(name, taken))
        moved, renamed = list(branch.node), {}
        for old, target in zip([v.name for v in branch.output], node.output, strict=True):
            if any(old in inner.output for inner in moved) and old not in renamed:
                rename_definition(branch, old, target)
                renamed[old] = target
            else:  # an outer tensor, a branch initializer, or one tensor giving two outputs
                moved.append(helper.make_node("Identity", [renamed.get(old, old)], [target],
                                              name=f"{node.name}/{target}"))
        graph.initializer.extend(branch.initializer)
        nodes += moved
        inlined += 1
    if inlined:
        del graph.node[:]
        graph.node.extend(nodes)
    return inlined


def fresh(base: str, taken: set[str]) -> str:
    """`base`, or `base_1`, `base_2`... whichever is not taken yet; it is taken from then on."""
    name, i = base, 0
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    taken.add(name)
    return name


def rename_definition(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Rename a tensor `graph` defines (an initializer, input or node output) and every read of it."""
    for value in [*graph.initializer, *graph.input]:
        if value.name == old:
            value.name = new
    for node in graph.node:
        node.output[:] = [new if name == old else name for name in node.output]
    rename_uses(graph, old, new)
