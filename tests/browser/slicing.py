"""Find each notebook's explorers and build a copy holding only the cells those explorers need.

A cell tagged ``explorer`` displays an explorer. Its copy keeps, in notebook order, the explorer cells,
any cells tagged ``explorer-setup``, and, transitively, the last earlier cell that binds each name they
read. Verification and experiment cells are left out, so the browser runs a few seconds of setup
instead of the whole chapter (nbval already runs every cell).
"""
from __future__ import annotations

import ast
import copy
import symtable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import nbformat

EXPLORER, SETUP = "explorer", "explorer-setup"
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def tags(cell) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def explorer_notebooks(folder: Path) -> list[Path]:
    """The notebooks in ``folder`` with at least one ``explorer``-tagged code cell."""
    return [path for path in sorted(Path(folder).glob("*.ipynb"))
            if any(EXPLORER in tags(cell) for cell in nbformat.read(path, 4).cells)]


def _scope_reads(table) -> set[str]:
    """Names a scope and the functions and classes inside it read from module globals."""
    module = table.get_type() == "module"
    names = {symbol.get_name() for symbol in table.get_symbols()
             if symbol.is_referenced() and (module or symbol.is_global())}
    for child in table.get_children():
        names |= _scope_reads(child)
    return names


def _statement_names(source: str) -> tuple[set[str], set[str]]:
    table = symtable.symtable(source, "<cell>", "exec")
    binds = {symbol.get_name() for symbol in table.get_symbols()
             if symbol.is_assigned() or symbol.is_imported() or symbol.is_namespace()}
    return _scope_reads(table), binds


_BLOCKS = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith, ast.Try)


def _in_order(statements, reads: set, binds: set):
    """Add what each statement reads before it is bound, then what it binds. Blocks (if, for, with,
    try) are opened, so ``x = f()`` followed by ``use(x)`` inside a ``try`` does not read ``x``."""
    for statement in statements:
        blocks = []
        if isinstance(statement, _BLOCKS):
            statement = copy.copy(statement)  # the header alone: each block becomes ``pass``
            for field in ("body", "orelse", "finalbody"):
                if getattr(statement, field, None):
                    blocks.append(getattr(statement, field))
                    setattr(statement, field, [ast.Pass()])
            for handler in getattr(statement, "handlers", []):
                blocks.append(handler.body)
            statement.handlers = [ast.ExceptHandler(h.type, h.name, [ast.Pass()])
                                  for h in getattr(statement, "handlers", [])]
        statement_reads, statement_binds = _statement_names(ast.unparse(statement))
        reads |= statement_reads - binds
        binds |= statement_binds
        for block in blocks:
            _in_order(block, reads, binds)


@dataclass(frozen=True)
class CellNames:
    reads: frozenset   # names the cell reads before binding them itself
    binds: frozenset   # module-level names the cell binds
    star: bool         # ``from x import *``: may bind anything


@lru_cache(maxsize=None)
def cell_names(source: str) -> CellNames:
    """What a code cell reads and binds, in execution order (IPython magics understood)."""
    from IPython.core.inputtransformer2 import TransformerManager

    tree = ast.parse(TransformerManager().transform_cell(source))
    reads, binds = set(), set()
    _in_order(tree.body, reads, binds)
    star = any(isinstance(node, ast.ImportFrom) and node.names[0].name == "*" for node in ast.walk(tree))
    return CellNames(frozenset(reads), frozenset(binds), star)


def needed_cells(cells) -> list[int]:
    """Indices of the code cells the ``explorer`` (and ``explorer-setup``) cells need, in order."""
    code = {i: cell_names(cell.source) for i, cell in enumerate(cells) if cell.cell_type == "code"}
    wanted = [i for i in code if tags(cells[i]) & {EXPLORER, SETUP}]
    keep = set()
    while wanted:
        i = wanted.pop()
        if i in keep:
            continue
        keep.add(i)
        earlier = [j for j in code if j < i]
        for name in code[i].reads:
            definers = [j for j in earlier if name in code[j].binds]
            wanted += definers[-1:]
        wanted += [j for j in earlier if code[j].star]
    return sorted(keep)


@dataclass
class ExplorerCopy:
    path: Path              # the trimmed copy
    kept: list[int]         # indices of the kept cells in the course notebook
    explorers: list[int]    # positions of the explorer cells in the copy


def explorer_copy(source: Path, folder: Path) -> ExplorerCopy:
    """Write a copy of ``source`` into ``folder`` with only the cells its explorers need, no outputs."""
    nb = nbformat.read(source, 4)
    kept = needed_cells(nb.cells)
    cells = [nb.cells[i] for i in kept]
    for cell in cells:
        cell.outputs, cell.execution_count = [], None
    nb.cells = cells
    nb.metadata.pop("widgets", None)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)  # the kernel of the Python running the tests
    path = Path(folder) / Path(source).name
    nbformat.write(nb, path)
    return ExplorerCopy(path, kept, [k for k, cell in enumerate(cells) if EXPLORER in tags(cell)])
