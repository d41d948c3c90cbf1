"""The emulated device's shell: a restricted POSIX sh in the style of Android's mksh and toybox.

Layers: lex (text -> tokens), parse (tokens -> tree), expand and arith (words -> arguments), interp
(walks the tree: redirections, pipelines, jobs, command lookup). Commands: builtins (the shell's
own: cd, set, export, sh, ...), text, utils, files, fileops and procs; table names them all, and
that one table is handed to the interpreter. cond evaluates `test` and `[[ ]]`; exec decides how a
file runs (scripts, `#!` system programs, refusals; elf names native code).
"""

from emulator.shell.interp import VALUE_LIMIT, Shell
from emulator.shell.table import COMMANDS

__all__ = ["COMMANDS", "VALUE_LIMIT", "Shell"]
