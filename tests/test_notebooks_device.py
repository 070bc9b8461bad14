"""The notebooks on a GPU, checked as far as a CPU-only machine can.

``CNN_SEEING_DEVICE=cuda`` puts the course model and the photos on the GPU; every notebook cell must then keep
its own tensors beside them and bring results back with ``.cpu()`` before numpy or matplotlib reads them. A run
on the ``meta`` device stops at the first value a cell reads, so it cannot prove that; two checks here can:

- a static one: in the notebooks' code cells, ``.numpy()`` is called only on values that are on the CPU by
  construction (``.cpu()``, ``np.*``, or a torch factory without ``device=``, followed through names,
  slicing, arithmetic and ``torch.cat``/``stack``). It does not check the other direction (a CPU tensor
  made without ``device=`` and combined with a GPU result): whether a name holds a tensor, a number or a
  list is not visible in the source, and the notebooks build whole CPU models on purpose (ResNet-18 in
  00 and 01, the quadratic in 07), so such a rule would flag correct cells.
- the exercise checks run on the CPU by design (see :mod:`helpers.exercises`), whatever device the
  notebook chose: with the variable set to ``meta``, where any tensor that followed it could not be read,
  every notebook solution still passes its check.
"""
import ast
from pathlib import Path

import nbformat
import pytest
import torch

from helpers.core.hooks import DEVICE_VARIABLE
from test_exercises import CHECKS, SOLUTIONS, solution

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
FACTORIES = {"zeros", "ones", "full", "empty", "eye", "rand", "randn", "randint", "randperm", "tensor", "arange",
             "linspace", "logspace", "as_tensor", "from_numpy"}
SHAPE_ONLY = {"view", "reshape", "flatten", "double", "float", "long", "int", "bool", "clone", "detach", "abs",
              "sum", "mean", "round", "permute", "expand", "expand_as", "t", "sqrt", "exp", "log"}


def on_cpu(node: ast.AST, cpu_names: set[str]) -> bool:
    """Whether ``node``'s value is on the CPU by construction (False when the source does not show it)."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.Name):
        return node.id in cpu_names
    if isinstance(node, (ast.Subscript, ast.Starred)):
        return on_cpu(node.value, cpu_names)
    if isinstance(node, ast.UnaryOp):
        return on_cpu(node.operand, cpu_names)
    if isinstance(node, ast.BinOp):
        return on_cpu(node.left, cpu_names) and on_cpu(node.right, cpu_names)
    if isinstance(node, ast.Compare):
        return all(on_cpu(part, cpu_names) for part in (node.left, *node.comparators))
    if isinstance(node, (ast.List, ast.Tuple)):
        return all(on_cpu(element, cpu_names) for element in node.elts)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        function, receiver = node.func.attr, node.func.value
        if function in ("cpu", "numpy", "tolist", "item"):
            return True
        if isinstance(receiver, ast.Name) and receiver.id == "np":
            return True
        if isinstance(receiver, ast.Name) and receiver.id == "torch":
            if function in FACTORIES:
                return not any(keyword.arg == "device" for keyword in node.keywords)
            if function in ("cat", "stack") and node.args:
                return on_cpu(node.args[0], cpu_names)
            return False
        if function in SHAPE_ONLY:
            return on_cpu(receiver, cpu_names)
    return False


def numpy_on_device(source: str, cpu_names: set[str]) -> list[str]:
    """The ``.numpy()`` calls in ``source`` whose receiver is not on the CPU by construction. Updates
    ``cpu_names`` with the names the cell binds to CPU values (and forgets those it rebinds to others)."""
    tree = ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))))
    events = sorted((node for node in ast.walk(tree) if isinstance(node, (ast.Assign, ast.Call))),
                    key=lambda node: (node.end_lineno, node.end_col_offset, isinstance(node, ast.Assign)))
    found = []
    for node in events:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                pairs = [(target, node.value)]
                if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple) \
                        and len(target.elts) == len(node.value.elts):
                    pairs = list(zip(target.elts, node.value.elts))
                for name, value in pairs:
                    for bound in ast.walk(name):
                        if isinstance(bound, ast.Name):
                            (cpu_names.add if on_cpu(value, cpu_names) else cpu_names.discard)(bound.id)
        elif isinstance(node.func, ast.Attribute) and node.func.attr == "numpy" and not node.args:
            if not on_cpu(node.func.value, cpu_names):
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def numpy_calls_on_device(path: Path) -> list[str]:
    cpu_names: set[str] = set()
    found = []
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "code":
            found += [f"{path.name}, cell {cell.get('id')}, {where}" for where in numpy_on_device(cell.source, cpu_names)]
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebooks_call_numpy_only_on_cpu_values(path):
    found = numpy_calls_on_device(path)
    assert not found, "on a GPU these fail: put .cpu() before .numpy():\n" + "\n".join(found)


def test_the_static_check_tells_cpu_values_from_results():
    cpu_names = set()
    flagged = numpy_on_device(
        "grid = torch.arange(65) / 64\n"
        "alphas = torch.cat([torch.linspace(0, 1, 5), torch.tensor([2.0])])\n"
        "along = scores(alphas.to(x.device)).cpu()\n"
        "ok = [grid[:7].numpy(), alphas.view(-1).numpy(), along.double().numpy(), (grid > 0).numpy()]\n"
        "on_gpu = torch.arange(3, device=x.device)\n"
        "bad = [maps[0].numpy(), on_gpu.numpy(), (grid * maps).numpy(), saliency(model, x, 1).numpy()]\n"
        "grid = maps.mean(0)\n"
        "bad.append(grid.numpy())\n", cpu_names)
    assert [line.split(": ", 1)[1] for line in flagged] == [
        "maps[0].numpy()", "on_gpu.numpy()", "(grid * maps).numpy()", "saliency(model, x, 1).numpy()", "grid.numpy()"]


@pytest.mark.parametrize("check", sorted(SOLUTIONS))
def test_the_exercise_checks_run_on_the_cpu_whatever_the_notebooks_device(check, monkeypatch, capsys):
    monkeypatch.setenv(DEVICE_VARIABLE, "meta")  # the notebook's model and photos would be where nothing is readable
    torch.manual_seed(0)
    CHECKS[check](solution(check))
    assert "✓" in capsys.readouterr().out
