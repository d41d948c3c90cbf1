"""The device shell's language: parsing, quoting, expansion, status, redirections, scripts, control flow,
system programs and cancellation, against a real sandbox (the adb path is tested by the transport)."""

from __future__ import annotations

import io
import os
import random
import threading
import time
from pathlib import Path

import pytest

from emulator.programs import SYSTEM_PROGRAMS, ProgramContext
from emulator.shell.parse import AndOr, ParseError, Pipeline, Simple, parse
from tests.emulator.test_shell_support import TMP, ShellRunner

# ---- parsing -------------------------------------------------------------------------------


def test_parse_lists_and_or_pipelines_and_redirects() -> None:
    tree = parse("a x && b || c 2>&1 >out; d | e\nf")
    assert len(tree.items) == 3
    first = tree.items[0]
    assert isinstance(first, AndOr) and [op for op, _ in first.rest] == ["&&", "||"]
    c = first.rest[1][1].commands[0]
    assert isinstance(c, Simple)
    assert [(r.fd, r.op) for r in c.redirects] == [(2, ">&"), (1, ">")]
    second = tree.items[1].first
    assert isinstance(second, Pipeline) and len(second.commands) == 2


@pytest.mark.parametrize(
    ("source", "message"),
    [("if true; then echo", "end of file"), ("echo 'open", "no closing quote"), ("a && ; b", "';' unexpected"),
     ("fi", "'fi' unexpected"), ("echo ${x", "missing }")],
)
def test_syntax_errors(source: str, message: str, sh: ShellRunner) -> None:
    with pytest.raises(ParseError, match=message):
        parse(source)
    result = sh(source)
    assert result.status == 2
    assert result.err.startswith("/system/bin/sh: ") and message in result.err


# ---- quoting and expansion -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (r"echo 'a  b' " + '"c  d" e\\ \\ f', "a  b c  d e  f\n"),
        ("""echo "it's" 'say "hi"'""", """it's say "hi"\n"""),
        ("""x='a  b'; printf '[%s]' $x "$x" """, "[a][b][a  b]"),
        (r"""echo "\$HOME" '$HOME' \$HOME""", "$HOME $HOME $HOME\n"),
        ("""printf '[%s]' "" '' x""", "[][][x]"),
        ("""e=; printf '[%s]' $e "$e" """, "[]"),
        ("echo ${HOME}x $HOMEx.", "/x .\n"),
        (r"printf '%s\n' " + r'"a\"b" a\\b', 'a"b\na\\b\n'),
        (r"echo 'tab\there' -n", "tab\there -n\n"),
        ("echo a#b #a comment", "a#b\n"),
        ("echo a;echo b ;  echo c", "a\nb\nc\n"),
        ("x=5; echo $((x * 2 + 1)) $((7 / 2)) $((7 % 3)) $(( (1 + 2) * 3 ))", "11 3 1 9\n"),
        ("i=1; echo $((i+=2)) $((i++)) $i $((++i)) $((i--)) $i $((x=7)) $((i*=2))", "3 3 4 5 5 4 7 8\n"),
        ("echo $((3 == 3)) $((1 != 2)) $((!0)) $((-7 / 2)) $((-7 % 3)) $((1 < 2 && 2 < 1))", "1 1 1 -3 -1 0\n"),
        ("echo $((2147483647 + 1)) $((1 << 1000000000)) $((9223372036854775807 + 1))", "-2147483648 1 0\n"),  # 32-bit
        ("f=/a/b/c.raw; echo ${f##*/} ${f%.raw} ${f#/a/} ${f%/*} ${#f}", "c.raw /a/b/c b/c.raw /a/b 10\n"),
        ("echo ${U:-d1} ${U-d2} [${U:+x}]; U=v; echo ${U:+set} ${U:-no}", "d1 d2 []\nset v\n"),
        ("E=; echo [${E-unset}] [${E:-empty}]", "[] [empty]\n"),
        ("echo $(echo nested $(echo deep)) `echo back`", "nested deep back\n"),
        ('x="$(printf "a\\n\\n")"; echo "[$x]"', "[a]\n"),
        ("echo ${Z:=assigned}; echo $Z", "assigned\nassigned\n"),
        ('echo "${Q:-two words}" | wc -w', "2\n"),
        ("echo one \\\ntwo", "one two\n"),
    ],
)
def test_quoting_and_expansion(command: str, expected: str, sh: ShellRunner) -> None:
    result = sh(command)
    assert (result.out, result.err, result.status) == (expected, "", 0)


def test_positional_and_special_parameters(sh: ShellRunner) -> None:
    result = sh("""set -- a "b c" d; echo $#; echo "$1|$2|$3|$4"; printf '<%s>' "$@"; echo
printf '<%s>' $*; echo; printf '<%s>' "$*"; echo; printf '<%s>' x"$@"y; echo; shift; echo $1; echo $0""")
    assert result.out == "3\na|b c|d|\n<a><b c><d>\n<a><b><c><d>\n<a b c d>\n<xa><b c><dy>\nb c\n/system/bin/sh\n"
    assert sh('set --; printf "<%s>" "$@"; echo $#').out == "<>0\n"  # printf runs its format once


def test_field_splitting_follows_ifs(sh: ShellRunner) -> None:
    result = sh('x="a,b,,c"; IFS=,; printf "<%s>" $x; echo; unset IFS; y=" a  b "; printf "<%s>" $y "$y"; echo')
    assert result.out == "<a><b><><c>\n<a><b>< a  b >\n"
    assert sh('IFS=; z="p q"; printf "<%s>" $z').out == "<p q>"


def test_read_splits_lines_into_variables(sh: ShellRunner) -> None:
    lines = b"k=v=w\n  lead  trail  \n1 2 3 4\n"
    result = sh('IFS== read a b; echo "$a|$b"; IFS= read -r l; echo "[$l]"; read x y; echo "$x|$y"; '
                'read z || echo eof=$?; echo "ifs unchanged: [$IFS]"', stdin=lines)
    assert result.out == "k|v=w\n[  lead  trail  ]\n1|2 3 4\neof=1\nifs unchanged: []\n"


def test_tilde_and_special_builtin_assignments(sh: ShellRunner) -> None:
    assert sh('echo ~ ~/x "~" a~; HOME=/data; echo ~/y').out == "/ //x ~ a~\n/data/y\n"
    assert sh("V=1 export W=2; echo $V $W; X=3 true; echo [$X]").out == "1 2\n[]\n"


def test_glob_expands_in_the_sandbox_only(sh: ShellRunner) -> None:
    sh.fs.mkdir(f"{TMP}/g")
    for name in ("a.raw", "b.raw", "c.txt", ".hidden.raw"):
        sh.write(f"{TMP}/g/{name}", b"")
    result = sh("cd /data/local/tmp/g && echo *.raw; echo /data/local/tmp/g/*.txt; echo '*.raw' nomatch*; "
                "echo .*.raw")
    assert result.out == "a.raw b.raw\n/data/local/tmp/g/c.txt\n*.raw nomatch*\n.hidden.raw\n"


def test_glob_removes_a_folders_files(sh: ShellRunner) -> None:
    sh("mkdir -p /data/local/tmp/r/sub && touch /data/local/tmp/r/x /data/local/tmp/r/y")
    result = sh("rm -rf /data/local/tmp/r/* && ls /data/local/tmp/r | wc -l")
    assert result.out == "0\n"


# ---- status, and-or, exit -------------------------------------------------------------------


def test_exit_status_and_question_mark(sh: ShellRunner) -> None:
    result = sh("false; echo $?; true; echo $?; nope; echo $?; ! true; echo $?; ! false; echo $?")
    assert result.out == "1\n0\n127\n1\n0\n"
    assert result.err == "/system/bin/sh: nope: inaccessible or not found\n"


def test_and_or_short_circuit(sh: ShellRunner) -> None:
    result = sh("false && echo no1; true || echo no2; false || echo yes1; true && echo yes2; "
                "false && echo no3 || echo yes3")
    assert result.out == "yes1\nyes2\nyes3\n"
    assert sh("true && false").status == 1
    assert sh("false || nope 2>/dev/null").status == 127


def test_exit_ends_the_shell_with_its_status(sh: ShellRunner) -> None:
    result = sh("echo a; exit 42; echo b")
    assert (result.out, result.status) == ("a\n", 42)
    assert sh("false; exit").status == 1
    assert sh("(exit 3); echo $?").out == "3\n"
    assert sh("exit 300").status == 300 & 0xFF


def test_assignment_prefix_only_for_that_command(sh: ShellRunner) -> None:
    result = sh('A=1 env | grep "^A="; echo "[$A]"; B=2; env | grep -c "^B="; export B; env | grep "^B="; '
                "unset B; echo [$B]")
    assert result.out == "A=1\n[]\n0\nB=2\n[]\n"


def test_default_environment_is_androids_shell_user(sh: ShellRunner) -> None:
    env = dict(line.split("=", 1) for line in sh("env").out.splitlines())
    assert env["PATH"].split(":")[0] == "/product/bin" and "/system/bin" in env["PATH"].split(":")
    assert (env["HOME"], env["TMPDIR"], env["USER"], env["SHELL"]) == ("/", TMP, "shell", "/system/bin/sh")
    assert (env["ANDROID_DATA"], env["ANDROID_ROOT"]) == ("/data", "/system")
    assert sh("echo $EXTRA", env={"EXTRA": "given"}).out == "given\n"


# ---- redirections --------------------------------------------------------------------------


def test_output_redirections(sh: ShellRunner) -> None:
    result = sh("cd /data/local/tmp && echo one > f && echo two >> f && cat < f && cat f > g 2>/dev/null; cat g")
    assert result.out == "one\ntwo\none\ntwo\n"
    assert sh.read(f"{TMP}/f") == b"one\ntwo\n"


def test_stderr_redirections_and_their_order(sh: ShellRunner) -> None:
    assert sh("cat /nope 2>/dev/null").err == ""
    both = sh("cat /nope 2>&1")
    assert (both.out, both.err) == ("cat: /nope: No such file or directory\n", "")
    ordered = sh("cat /nope 2>&1 >/dev/null")  # stderr goes where stdout was
    assert ordered.out == "cat: /nope: No such file or directory\n"
    swapped = sh("echo x >/dev/null 2>&1; echo to-err >&2; echo to-err2 1>&2")
    assert (swapped.out, swapped.err) == ("", "to-err\nto-err2\n")
    logged = sh("cd /data/local/tmp; { echo o; cat /nope; } > log 2>&1; cat log")
    assert logged.out == "o\ncat: /nope: No such file or directory\n"


HEREDOCS = r"""cat <<EOF > /data/local/tmp/h.txt
home=$HOME "kept" \$literal $(echo sub)
	indented
EOF
cat /data/local/tmp/h.txt; cat <<'RAW'
$HOME `x`
RAW
cat <<-END | wc -l
	one
	END
echo done"""


def test_here_documents(sh: ShellRunner) -> None:
    result = sh(HEREDOCS)
    assert result.out == 'home=/ "kept" $literal sub\n\tindented\n$HOME `x`\n1\ndone\n'
    assert sh("cat <<EOF\nnever closed\n").status == 2
    # mksh's here-string: the expanded word and a newline, not field-split.
    assert sh("""v='a  b'; read -r x y <<< "$v $HOME"; echo "$x|$y" """).out == "a|b /\n"
    assert sh("wc -c <<<abc").out.strip() == "4"


def test_writing_to_a_descriptor_open_for_reading_is_an_error(sh: ShellRunner) -> None:
    sh.write(f"{TMP}/r", b"old\n")
    result = sh(f"echo x 1<> {TMP}/r; echo $?; echo y 3<{TMP}/r >&3; echo $?")
    assert result.out == "1\n1\n"
    assert result.err == "echo: write error: Bad file descriptor\n" * 2
    assert sh.read(f"{TMP}/r") == b"old\n"


def test_redirection_failure_skips_the_command(sh: ShellRunner) -> None:
    result = sh("echo hi > /system/x; echo $?; cat < /nope; echo $?")
    assert result.out == "1\n1\n"
    assert result.err == ("/system/bin/sh: can't create /system/x: Read-only file system\n"
                          "/system/bin/sh: can't open /nope: No such file or directory\n")


def test_exec_redirects_the_rest_of_the_shell(sh: ShellRunner) -> None:
    result = sh("cd /data/local/tmp; exec > out.log 2>&1; echo hidden; cat /nope; exec 1>&2")
    assert result.out == ""
    assert sh.read(f"{TMP}/out.log") == b"hidden\ncat: /nope: No such file or directory\n"
    # A file the shell holds open shows each write at once, as on a device.
    held = sh("cd /data/local/tmp; exec 3>held.log; echo one >&3; cat held.log; echo two >&3; wc -l < held.log")
    assert held.out.split() == ["one", "2"]


def test_pipes_between_builtins(sh: ShellRunner) -> None:
    sh("mkdir /data/local/tmp/p && touch /data/local/tmp/p/a /data/local/tmp/p/b /data/local/tmp/p/c")
    assert sh("ls /data/local/tmp/p | wc -l").out == "3\n"
    assert sh("printf 'a\\nb\\nc\\n' | grep -v b | tail -n 1").out == "c\n"
    assert sh("echo abc | cat | cat | cat").out == "abc\n"
    assert sh("false | true").status == 0 and sh("true | false").status == 1
    # as in mksh, every stage is a subshell, the last one too
    assert sh("echo x | read v; echo [$v]; printf 'l1\\nl2\\n' | while read line; do echo got $line; done").out == (
        "[]\ngot l1\ngot l2\n")


# ---- scripts -------------------------------------------------------------------------------

SCRIPT = b"""#!/system/bin/sh
# arguments keep their spaces through "$@"
echo "name=$0 count=$#"
for a in "$@"; do echo "arg=[$a]"; done
cd /
echo "cwd=$(pwd) var=$EXPORTED local=$LOCAL"
exit 5
"""


def test_executable_script_by_path(sh: ShellRunner) -> None:
    sh.fs.mkdir(f"{TMP}/s")
    sh.write(f"{TMP}/s/run.sh", SCRIPT, mode=0o755)
    result = sh('export EXPORTED=yes; LOCAL=no; cd /data/local/tmp/s && ./run.sh "a b" c ""; echo "st=$? $(pwd)"')
    assert result.out == ("name=./run.sh count=3\narg=[a b]\narg=[c]\narg=[]\ncwd=/ var=yes local=\n"
                          "st=5 /data/local/tmp/s\n")
    by_abs = sh("/data/local/tmp/s/run.sh x")
    assert by_abs.status == 5 and "name=/data/local/tmp/s/run.sh count=1" in by_abs.out


def test_script_without_x_bit_is_refused(sh: ShellRunner) -> None:
    sh.write(f"{TMP}/plain.sh", SCRIPT, mode=0o644)
    refused = sh("cd /data/local/tmp; ./plain.sh")
    assert (refused.status, refused.err) == (126, "/system/bin/sh: ./plain.sh: can't execute: Permission denied\n")
    assert sh("cd /data/local/tmp; sh plain.sh 1 2").out.startswith("name=plain.sh count=2\n")
    assert sh("cd /data/local/tmp; chmod +x plain.sh && ./plain.sh").status == 5


def test_sdcard_is_mounted_noexec(sh: ShellRunner) -> None:
    sh.write("/sdcard/run.sh", SCRIPT, mode=0o755)
    result = sh("/sdcard/run.sh")
    assert result.status == 126 and "Permission denied" in result.err
    assert sh("sh /sdcard/run.sh").status == 5


def test_shebang_interpreters(sh: ShellRunner) -> None:
    sh.write(f"{TMP}/noshebang", b"echo plain $1\n", mode=0o755)
    sh.write(f"{TMP}/py", b"#!/usr/bin/env python3\nprint(1)\n", mode=0o755)
    sh.write(f"{TMP}/binsh", b"#!/bin/sh\necho binsh\n", mode=0o755)
    result = sh("cd /data/local/tmp; ./noshebang ok; ./binsh; ./py")
    assert result.out == "plain ok\nbinsh\n"
    assert result.err == "/system/bin/sh: ./py: No such file or directory\n" and result.status == 127


def test_sh_dash_c_and_stdin_scripts(sh: ShellRunner) -> None:
    assert sh("sh -c 'echo $0 $1 $#' name one two").out == "name one 2\n"
    assert sh("sh -c 'exit 9'; echo $?").out == "9\n"
    assert sh("sh", stdin=b"echo from stdin\nexit 4\n").out == "from stdin\n"
    assert sh("sh -c").status == 2


def test_errors_inside_scripts_name_the_script_and_line(sh: ShellRunner) -> None:
    sh.write(f"{TMP}/bad.sh", b"echo one\n\nmissing-command\n", mode=0o755)
    result = sh("/data/local/tmp/bad.sh")
    assert result.err == "/data/local/tmp/bad.sh[3]: missing-command: inaccessible or not found\n"
    assert result.status == 127


def test_set_e_stops_at_the_first_failure(sh: ShellRunner) -> None:
    assert sh("set -e; echo a; false; echo b").out == "a\n"
    assert sh("set -e; echo a; false; echo b").status == 1
    tolerant = sh("set -e; false || true; if false; then :; fi; false && true; ! true; echo reached")
    assert tolerant.out == "reached\n"
    assert sh("sh -e -c 'false; echo no'").out == ""
    sh.write(f"{TMP}/e.sh", b"#!/system/bin/sh\nset -e\ncd /nowhere\necho unreachable\n", mode=0o755)
    result = sh("/data/local/tmp/e.sh; echo after=$?")
    assert result.out == "after=1\n"


def test_shell_options(sh: ShellRunner) -> None:
    traced = sh("set -x; a=1 echo hi; set +x; echo quiet")
    assert (traced.out, traced.err) == ("hi\nquiet\n", "+ a=1 echo hi\n+ set +x\n")
    unset = sh("set -u; echo ${X:-ok}; echo $X; echo never")
    assert (unset.out, unset.err, unset.status) == ("ok\n", "/system/bin/sh: X: parameter not set\n", 1)
    assert sh("echo ${Y:?custom}; echo never").err == "/system/bin/sh: Y: custom\n"
    assert sh("set -o pipefail; false | true; echo $?; set +o pipefail; false | true; echo $?").out == "1\n0\n"
    assert sh("set -f; echo /dat*; set +f; echo /dat*").out == "/dat*\n/data\n"
    assert sh("set -eu; echo $-").out == "eu\n"
    assert sh('sh -ec "false; echo no"; echo $?').out == "1\n"
    assert sh("set -o | grep pipefail").out == "pipefail   off\n"
    bad = sh("set -z")
    assert (bad.status, bad.err) == (2, "/system/bin/sh: set: -z: unknown option\n")


def test_shebang_dash_e_and_assignment_status(sh: ShellRunner) -> None:
    sh.write(f"{TMP}/strict", b"#!/system/bin/sh -e\nfalse\necho unreachable\n", mode=0o755)
    assert sh("/data/local/tmp/strict; echo $?").out == "1\n"
    assert sh("x=$(false); echo $?; y=$(true); echo $?").out == "1\n0\n"


def test_command_substitution_reads_the_commands_stdin(sh: ShellRunner) -> None:
    assert sh("read a; echo a=$a rest=$(cat)", stdin=b"one\ntwo\n").out == "a=one rest=two\n"
    assert sh("echo piped | echo got=$(cat)", stdin=b"not this").out == "got=piped\n"
    assert sh("x=$(cat); echo [$x]", stdin=b"assigned").out == "[assigned]\n"


def test_exit_traps(sh: ShellRunner) -> None:
    result = sh('trap "echo cleanup \\$?" EXIT; echo body; false')
    assert (result.out, result.status) == ("body\ncleanup 1\n", 1)
    assert sh('trap "echo bye" 0; trap; exit 4').out == "trap -- 'echo bye' EXIT\nbye\n"
    assert sh('trap "exit 9" EXIT; true').status == 9
    assert sh('trap "echo t1" EXIT; trap - EXIT; echo none').out == "none\n"
    assert sh('trap "echo outer" EXIT; (trap "echo sub" EXIT; echo in); echo out').out == "in\nsub\nout\nouter\n"
    sh.write(f"{TMP}/tmpdir.sh", b'#!/system/bin/sh\nd=$(mktemp -d)\ntrap "rm -rf $d" EXIT\necho $d\nexit 3\n',
             mode=0o755)
    made = sh("/data/local/tmp/tmpdir.sh")
    assert made.status == 3 and not sh.fs.exists(made.out.strip())


def test_type_names_what_a_command_is(sh: ShellRunner) -> None:
    result = sh("f() { :; }; type cd ls f nope")
    assert result.out == "cd is a shell builtin\nls is /system/bin/ls\nf is a function\n"
    assert (result.err, result.status) == ("type: nope: not found\n", 1)


def test_runaway_recursion_is_an_error_not_a_crash(sh: ShellRunner) -> None:
    result = sh("f() { f; }; f; echo never")
    assert (result.status, result.out, result.err) == (2, "", "/system/bin/sh: recursion too deep\n")
    assert sh("echo still fine").out == "still fine\n"


def test_dot_sources_into_the_current_shell(sh: ShellRunner) -> None:
    sh.write(f"{TMP}/vars.sh", b"SOURCED=yes\ncd /data\n")
    assert sh(". /data/local/tmp/vars.sh; echo $SOURCED $(pwd)").out == "yes /data\n"


# ---- control flow --------------------------------------------------------------------------


def test_if_for_while_case_and_functions(sh: ShellRunner) -> None:
    result = sh("""
if [ -d /data ]; then echo dir; elif true; then echo no; else echo no; fi
if false; then echo no; else echo else; fi
for f in a "b c"; do echo "f=$f"; done
i=0; while [ $i -lt 3 ]; do i=$((i + 1)); done; echo i=$i
until [ $i -eq 0 ]; do i=$((i - 1)); [ $i -eq 1 ] && break; done; echo i=$i
for n in 1 2 3 4; do [ $n = 2 ] && continue; echo n=$n; [ $n = 3 ] && break; done
case abc.raw in *.txt) echo txt;; *.raw|*.bin) echo raw;; *) echo other;; esac
greet() { echo "hi $1 ($#)"; return 3; }
greet there now; echo ret=$?
(cd /system; echo sub=$(pwd)); echo main=$(pwd)
""")
    assert result.out == ("dir\nelse\nf=a\nf=b c\ni=3\ni=1\nn=1\nn=3\nraw\nhi there (2)\nret=3\n"
                          "sub=/system\nmain=/\n")
    assert result.status == 0 and result.err == ""


def test_background_jobs_and_wait(sh: ShellRunner) -> None:
    result = sh("cd /data/local/tmp; "
                "(for i in $(seq 500); do [ -e go ] && break; sleep 0.01; done; echo late) & "
                "echo early; echo pid=$!; touch go; wait; echo after")
    lines = result.out.splitlines()
    assert lines[0] == "early" and lines[1].startswith("pid=") and lines[1][4:].isdigit()
    assert lines[2:] == ["late", "after"]
    # the session ends only when its background jobs have, as adb waits for all holders of the output
    waits_for_go = "for i in $(seq 500); do [ -e /data/local/tmp/go2 ] && break; sleep 0.01; done"
    assert sh(f"({waits_for_go}; echo bg) & echo fg; touch /data/local/tmp/go2").out == "fg\nbg\n"


def test_double_bracket_conditionals(sh: ShellRunner) -> None:
    result = sh("""f=model.onnx; pat='*.onnx'; x="a b"
[[ $f == *.onnx ]] && echo glob
[[ $f == "*.onnx" ]] || echo quoted-is-literal
[[ $f == $pat ]] && echo pattern-from-variable
[[ -d /data && ! -e /nope ]] && echo files
[[ abc =~ ^a.c$ ]] && echo regex
[[ a < b ]] && echo less
[[ $x == "a b" ]] && echo no-splitting
[[ ( 1 -eq 2 ) || 3 -gt 2 ]] && echo grouped
case $f in $pat) echo case-pattern;; esac
s=.onnx; echo ${f%$s}""")
    assert result.out.split() == ["glob", "quoted-is-literal", "pattern-from-variable", "files", "regex", "less",
                                  "no-splitting", "grouped", "case-pattern", "model"]
    bad = sh("[[ x -eq 1 ]]")
    assert (bad.status, bad.err) == (2, "/system/bin/sh: [[: x: bad number\n")
    assert sh("[[ -n x").status == 2


# ---- system programs -----------------------------------------------------------------------


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> list[ProgramContext]:
    """A system program that records how it was called and echoes its stdin."""
    calls: list[ProgramContext] = []

    def program(ctx: ProgramContext) -> int:
        calls.append(ctx)
        ctx.stdout.write(f"argv={ctx.argv[1:]} cwd={ctx.cwd} foo={ctx.env.get('FOO')}\n".encode())
        ctx.stdout.write(ctx.stdin.read())
        ctx.stderr.write(b"probe-err\n")
        return int(ctx.env.get("STATUS", "0"))

    monkeypatch.setitem(SYSTEM_PROGRAMS, "/system/bin/edgeloop-probe", program)
    return calls


def test_system_program_gets_argv_env_cwd_and_streams(sh: ShellRunner, probe: list[ProgramContext]) -> None:
    result = sh('cd /data/local/tmp && echo piped | FOO=bar edgeloop-probe a "b c" > out.txt 2>&1; cat out.txt')
    assert result.out == "argv=['a', 'b c'] cwd=/data/local/tmp foo=bar\npiped\nprobe-err\n"
    ctx = probe[0]
    assert ctx.argv[0] == "edgeloop-probe" and ctx.fs is sh.fs and ctx.device is sh.device
    assert ctx.env["PATH"].startswith("/product/bin")
    assert sh("/system/bin/edgeloop-probe x; echo $?").out.startswith("argv=['x']")


def test_system_program_status_passes_through(sh: ShellRunner, probe: list[ProgramContext]) -> None:
    assert sh("STATUS=139 edgeloop-probe 2>/dev/null </dev/null >/dev/null; echo $?").out == "139\n"


def test_system_programs_appear_in_the_image(sh: ShellRunner, probe: list[ProgramContext]) -> None:
    listing = sh("ls /system/bin").out.split()
    assert "edgeloop-probe" in listing and "ls" in listing and "sh" in listing
    assert sh("which edgeloop-probe ls; command -v cd").out == "/system/bin/edgeloop-probe\n/system/bin/ls\ncd\n"
    assert sh("test -x /system/bin/edgeloop-probe && [ -f /system/bin/ls ] && echo ok").out == "ok\n"
    assert sh("stat -c '%a %n %Y' /system/bin/edgeloop-probe").out == "755 /system/bin/edgeloop-probe 1230768000\n"
    assert sh("which nope").status == 1


def test_crashing_program_is_reported_not_raised(sh: ShellRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(ctx: ProgramContext) -> int:
        raise RuntimeError("boom")

    monkeypatch.setitem(SYSTEM_PROGRAMS, "/system/bin/edgeloop-broken", broken)
    result = sh("edgeloop-broken; echo next")
    assert (result.out, result.err) == ("next\n", "edgeloop-broken: internal error: boom\n")
    assert '"program_crash"' in Path(sh.device.log_path).read_text()


def test_program_output_past_the_quota(sh: ShellRunner, probe: list[ProgramContext]) -> None:
    sh.fs.quota_bytes = sh.fs.used_bytes() + 10
    result = sh("edgeloop-probe some long arguments > /data/local/tmp/out; echo $?")
    assert result.out == "1\n"
    assert result.err == "edgeloop-probe: /data/local/tmp/out: No space left on device\n"


class _HungUp:
    """An output stream whose client has gone away."""

    def write(self, data: bytes) -> int:
        raise BrokenPipeError("client gone")


def test_a_vanished_client_propagates_and_leaves_no_process(sh: ShellRunner, probe: list[ProgramContext]) -> None:
    with pytest.raises(BrokenPipeError):
        sh.shell.run("echo x; edgeloop-probe", stdin=io.BytesIO(), stdout=_HungUp(),  # type: ignore[arg-type]
                     stderr=_HungUp())  # type: ignore[arg-type]
    with pytest.raises(BrokenPipeError):
        sh.shell.run("edgeloop-probe", stdin=io.BytesIO(), stdout=_HungUp(),  # type: ignore[arg-type]
                     stderr=_HungUp())  # type: ignore[arg-type]
    assert sh("ps -f").out.count("\n") == 2  # the header and `ps -f` itself
    assert '"program_crash"' not in Path(sh.device.log_path).read_text()


def test_script_with_a_system_program_interpreter(sh: ShellRunner, probe: list[ProgramContext]) -> None:
    sh.write(f"{TMP}/via", b"#!/system/bin/edgeloop-probe\nbody\n", mode=0o755)
    assert sh("/data/local/tmp/via q").out.startswith("argv=['/data/local/tmp/via', 'q']")


# ---- cancellation --------------------------------------------------------------------------


def test_cancel_stops_sleep_promptly(sh: ShellRunner) -> None:
    cancel = threading.Event()
    timer = threading.Timer(0.2, cancel.set)
    timer.start()
    started = time.monotonic()
    result = sh("sleep 30; echo never", cancel=cancel)
    assert time.monotonic() - started < 5
    assert (result.status, result.out) == (129, "")
    timer.join()


def test_cancelled_shell_runs_nothing(sh: ShellRunner) -> None:
    cancel = threading.Event()
    cancel.set()
    result = sh("echo never > /data/local/tmp/x", cancel=cancel)
    assert result.status == 129 and not sh.fs.exists(f"{TMP}/x")


def test_cancel_reaches_a_running_program(sh: ShellRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    def waits(ctx: ProgramContext) -> int:
        return 130 if ctx.cancel.wait(30) else 0

    monkeypatch.setitem(SYSTEM_PROGRAMS, "/system/bin/edgeloop-waits", waits)
    cancel = threading.Event()
    timer = threading.Timer(0.2, cancel.set)
    timer.start()
    assert sh("edgeloop-waits; echo never", cancel=cancel).status == 129
    timer.join()


class _Watched:
    """stdout that lets the test wait until some text has been written."""

    def __init__(self) -> None:
        self.data = b""
        self.changed = threading.Condition()

    def write(self, data: bytes) -> int:
        with self.changed:
            self.data += bytes(data)
            self.changed.notify_all()
        return len(data)

    def flush(self) -> None:
        pass

    def wait_for(self, text: bytes) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: text in self.data, timeout=10)


def test_interactive_shell_runs_each_command_as_it_arrives(sh: ShellRunner) -> None:
    status, out = _run_fed(sh, "sh", [
        (b"echo one\n", b"one\n"),
        (b"if true; then\n", None),
        (b"  echo two\nfi\n", b"two\n"),
        (b"fi\ncd /data; pwd\nexit 3\necho never\n", None),
    ])
    assert status == 3
    assert out == b"one\ntwo\n/system/bin/sh: syntax error: 'fi' unexpected\n/data\n"


def test_ps_and_pkill_stop_a_running_session(sh: ShellRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    started = threading.Event()

    def waits(ctx: ProgramContext) -> int:
        started.set()
        return 130 if ctx.cancel.wait(30) else 0

    monkeypatch.setitem(SYSTEM_PROGRAMS, "/system/bin/edgeloop-waits", waits)
    sh("mkdir -p /data/local/tmp/edgeloop/b1")
    results = []
    worker = threading.Thread(target=lambda: results.append(
        sh("cd '/data/local/tmp/edgeloop/b1' && edgeloop-waits --x 1; echo never")))
    worker.start()
    assert started.wait(10)
    listing = sh("ps -f").out.splitlines()
    assert listing[0].split() == ["USER", "PID", "PPID", "CMD"]
    program = next(line.split() for line in listing if line.endswith("edgeloop-waits --x 1"))
    session = next(line.split() for line in listing if "/data/local/tmp/edgeloop/b1" in line)
    assert program[2] == session[1]  # the program's parent is its shell session
    assert sh("ps").out.count("edgeloop-waits") == 1
    assert sh("pkill -f /data/local/tmp/edgeloop/none").status == 1
    assert sh("pkill -f /data/local/tmp/edgeloop/b1").status == 0
    worker.join(10)
    assert not worker.is_alive()
    assert (results[0].status, results[0].out) == (143, "")
    assert sh("kill 99999").err == "kill: 99999: No such process\n"
    assert "edgeloop-waits" not in sh("ps -f").out


FUZZ_TEXT = (
    "echo ls cat x $x ${x ${x:-a} $( ) ( ' \" \\ | || && ; & > >> < 2>&1 << EOF if then fi for in do done case esac ;; "
    "{ } [[ ]] [ ] -e -z = == $(( )) 1+ * ? /data/local/tmp/f .. / sh -c set exit 3 read printf %s %d cut -f tr a-z "
    "$@ $# ` ~ ! test find -name sort -k stat %q grep $? while until break continue return f() eval . export unset "
    "IFS= mkdir -p rm -rf cp mv chmod +x seq xargs head -n tail wc date +% $((i+=1)) ${#x} ${x%%.*} ${x#*/} "
    "$((1/0)) 2> <& >&- <<- \"$@\" ${1:?} -u -o pipefail pkill [a kill ps time nohup exec command -v which source"
)
FUZZ_PIECES = [*FUZZ_TEXT.split(), "\n", "\t"]


def test_random_command_lines_never_crash_the_shell(sh: ShellRunner) -> None:
    """Seeded garbage in: every run ends with a status in 0..255, never a Python exception."""
    rng = random.Random(2026)
    statuses = set()
    for _ in range(400):
        command = " ".join(rng.choice(FUZZ_PIECES) for _ in range(rng.randint(1, 12)))
        result = sh(command, stdin=b"a b\nc\n")
        assert 0 <= result.status <= 255, command
        statuses.add(result.status)
    assert {0, 1, 2, 127} <= statuses  # successes, failures, syntax errors and unknown commands all occurred


def _run_fed(sh: ShellRunner, command: str, feed_steps: list[tuple[bytes, bytes | None]]) -> tuple[int, bytes]:
    """Run `command` with a live stdin pipe; write each chunk and, when given, wait until the output
    shows the expected bytes before writing more. Returns (status, output)."""
    read_fd, write_fd = os.pipe()
    stdout, status = _Watched(), []
    with open(read_fd, "rb") as stdin:
        worker = threading.Thread(target=lambda: status.append(
            sh.shell.run(command, stdin=stdin, stdout=stdout, stderr=stdout)))  # type: ignore[arg-type]
        worker.start()
        with open(write_fd, "wb", buffering=0) as feed:
            for chunk, expected in feed_steps:
                feed.write(chunk)
                if expected is not None:
                    assert stdout.wait_for(expected), expected  # answered while stdin is still open
        worker.join(10)
    return status[0], stdout.data


def test_cat_and_tee_stream_live_stdin(sh: ShellRunner) -> None:
    assert _run_fed(sh, "cat", [(b"partial", b"partial"), (b" line\n", b"partial line\n")]) == (0, b"partial line\n")
    status, out = _run_fed(sh, "tee /data/local/tmp/copy", [(b"first", b"first"), (b" second", None)])
    assert (status, out) == (0, b"first second") and sh.read(f"{TMP}/copy") == b"first second"
