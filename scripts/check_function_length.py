#!/usr/bin/env python3
"""List the add-on's functions longer than MAX_LINES lines, the lines of SQL
text aside (a string holding SELECT, INSERT, UPDATE, DELETE or WITH ...).
Exit 1 if there is one. Usage: check_function_length.py [FILE ...]; without
files, every .py file of the add-on but bench/, scripts/ and tests/."""

import ast
import re
import sys
from pathlib import Path

MAX_LINES = 40
ROOT = Path(__file__).resolve().parent.parent
# being rewritten (issue 19): checked once that is done ("file" or
# "file:function")
NOT_YET_CHECKED = set()
SQL = re.compile(
    r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b|\b(SELECT|FROM|WHERE|JOIN)\b.*\b(FROM|WHERE|JOIN|ANY)\b",
    re.IGNORECASE | re.DOTALL,
)


def sql_lines(tree):
    """The line numbers of SQL text: string constants that read as SQL."""
    lines = set()
    for node in ast.walk(tree):
        is_text = isinstance(node, ast.Constant) and isinstance(node.value, str)
        if is_text and SQL.search(node.value):
            lines.update(range(node.lineno, node.end_lineno + 1))
    return lines


def long_functions(path):
    """(line, name, length) of each function of the file over MAX_LINES."""
    tree = ast.parse(path.read_text(), filename=str(path))
    sql = sql_lines(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            body = range(node.lineno, node.end_lineno + 1)
            length = len([line for line in body if line not in sql])
            if length > MAX_LINES:
                yield node.lineno, node.name, length


def files(arguments):
    if arguments:
        return [Path(argument).resolve() for argument in arguments]
    return sorted(
        path
        for path in ROOT.rglob("*.py")
        if path.relative_to(ROOT).parts[0] not in ("bench", "scripts", "tests", "var")
    )


def main(arguments):
    found = False
    for path in files(arguments):
        relative = path.relative_to(ROOT).as_posix()
        if relative in NOT_YET_CHECKED:
            continue
        for line, name, length in long_functions(path):
            if f"{relative}:{name}" in NOT_YET_CHECKED:
                continue
            sys.stdout.write(
                f"{relative}:{line}: {name} has {length} lines (max {MAX_LINES})\n"
            )
            found = True
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
