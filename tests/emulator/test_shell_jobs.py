"""The shell's concurrency and mksh's language extras: streaming pipelines, job control, getopts,
${v/p/r} and ${v:o:l}, and arithmetic with mksh's 32-bit rules."""

from __future__ import annotations

import io
import tarfile
import threading

import pytest

from emulator.shell.pipes import CAPACITY, Pipe, PipeClosed
from emulator.shell.procs import Cancel
from tests.emulator.test_shell_support import ShellRunner


def test_a_pipe_is_bounded_and_a_gone_reader_fails_the_writer() -> None:
    pipe = Pipe(Cancel())
    pipe.writer.write(b"x" * CAPACITY)
    blocked = threading.Thread(target=pipe.writer.write, args=(b"more",), daemon=True)
    blocked.start()
    blocked.join(0.2)
    assert blocked.is_alive()  # full: the writer waits for its reader
    assert pipe.reader.read(10) == b"x" * 10
    blocked.join(10)
    assert not blocked.is_alive()
    pipe.reader.close()
    with pytest.raises(PipeClosed):
        pipe.writer.write(b"y")


def test_a_pipe_reads_lines_and_ends_when_its_writer_closes() -> None:
    pipe = Pipe(Cancel())
    pipe.writer.write(b"one\ntwo")
    pipe.writer.close()
    assert (pipe.reader.readline(), pipe.reader.readline(), pipe.reader.readline()) == (b"one\n", b"two", b"")


@pytest.mark.parametrize(("command", "out"), [
    ("yes | head -n1", "y\n"),
    ("yes ab | head -3", "ab\nab\nab\n"),
    ("seq 1 100000000 | head -n 2", "1\n2\n"),  # would take minutes (and 800 MB) if buffered
    ("producer() { while :; do echo tick; done; }; producer | head -n 3", "tick\ntick\ntick\n"),
    ("yes | while read l; do echo $l; break; done", "y\n"),
    ("x=$(yes | head -c 5); echo \"$x\"", "y\ny\ny\n"),
    ("seq 3 | { read a; echo first=$a; cat; }", "first=1\n2\n3\n"),
])
def test_pipeline_stages_run_concurrently(sh: ShellRunner, command: str, out: str) -> None:
    result = sh(command)
    assert (result.out, result.status) == (out, 0)


def test_pipeline_status_pipefail_and_sigpipe(sh: ShellRunner) -> None:
    assert sh("true | false").status == 1
    assert sh("false | true").status == 0
    assert sh("set -o pipefail; false | true; echo $?; true | false | true; echo $?").out == "1\n1\n"
    # the writer that outlives its reader ends as if by SIGPIPE
    assert sh("set -o pipefail; yes | head -n1 >/dev/null; echo $?").out == "141\n"
    # every stage is a subshell, as in mksh
    assert sh("x=1; echo 2 | read x; echo $x").out == "1\n"


def test_a_client_gone_in_a_stage_propagates(sh: ShellRunner) -> None:
    class Gone(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, data: object) -> int:
            raise BrokenPipeError("client gone")

    with pytest.raises(BrokenPipeError):
        sh.shell.run("echo a | cat", stdin=io.BytesIO(), stdout=Gone(), stderr=io.BytesIO())


def test_wait_returns_the_jobs_status(sh: ShellRunner) -> None:
    assert sh("(exit 3) & wait $!; echo $?").out == "3\n"
    assert sh("(exit 4) & p=$!; (exit 5) & wait $p; echo $?; wait; echo $?").out == "4\n0\n"
    assert sh("wait 12345; echo $?").out == "127\n"
    assert sh("(exit 6) & wait %1; echo $?").out == "6\n"


def test_kill_ends_one_job_not_the_script(sh: ShellRunner) -> None:
    result = sh("sleep 30 & p=$!; sleep 30 & q=$!; kill $p; wait $p; echo p=$?; "
                "kill -9 %2; wait $q; echo q=$?; echo still here")
    assert (result.out, result.status) == ("p=143\nq=137\nstill here\n", 0)
    assert sh("sleep 30 & kill -s INT $!; wait $!; echo $?").out == "130\n"
    assert sh("kill -0 $$ && echo alive; kill -0 99999; echo $?").out == "alive\n1\n"
    assert sh("kill %4").err == "kill: %4: no such job\n"
    assert sh("kill -l").out.split()[:3] == ["HUP", "INT", "QUIT"]


def test_a_killed_job_stops_what_it_runs(sh: ShellRunner) -> None:
    """A job blocked in a pipe (its reader sleeps) ends when killed; its shell goes on."""
    result = sh("(yes | sleep 30) & p=$!; kill $p; wait $p; echo $?")
    assert result.out == "143\n"


def test_background_jobs_read_dev_null(sh: ShellRunner) -> None:
    assert sh("cat & wait; echo done", b"typed\n").out == "done\n"


def test_jobs_show_in_ps_as_children_of_their_shell(sh: ShellRunner) -> None:
    result = sh("sleep 30 & echo $! $$; ps; kill $!")
    job, shell = result.out.splitlines()[0].split()
    rows = {line.split()[1]: line.split() for line in result.out.splitlines()[2:]}
    assert rows[job][2] == shell and rows[job][3] == "sh"
    listed = sh("sleep 30 & pidof sh; echo $!; kill $!; pidof nothing; echo $?").out.splitlines()
    assert listed[1] in listed[0].split() and listed[2:] == ["1"]


GETOPTS = """while getopts "ab:c" opt; do
  case $opt in
    a) echo A;;
    b) echo "B=$OPTARG";;
    \\?) echo "bad [${OPTARG-unset}]";;
    *) echo "other $opt";;
  esac
done
shift $((OPTIND-1))
echo "rest: $* OPTIND=$OPTIND"
"""


def test_getopts(sh: ShellRunner) -> None:
    sh.write("/data/local/tmp/g.sh", GETOPTS.encode())
    result = sh("cd /data/local/tmp; sh g.sh -a -b val -x -c file1 file2; sh g.sh -ab2 -- -a; sh g.sh -b")
    assert result.out == ("A\nB=val\nbad [unset]\nother c\nrest: file1 file2 OPTIND=6\n"
                          "A\nB=2\nrest: -a OPTIND=3\nbad [unset]\nrest:  OPTIND=2\n")
    assert "-x: unknown option" in result.err and "-b: requires an argument" in result.err
    silent = sh('set -- -z -b; while getopts ":ab:" o; do echo "$o $OPTARG"; done; echo $?')
    assert (silent.out, silent.err) == ("? z\n: b\n0\n", "")


@pytest.mark.parametrize(("command", "out"), [
    ("v=a.b.c; echo ${v/./-} ${v//./-} ${v/#a/X} ${v/%c/Y} ${v/b*/Z} ${v//[ac]/_}",
     "a-b.c a-b-c X.b.c a.b.Y a.Z _.b._\n"),
    ('v=a.b.c; p=b; echo "${v/./ }" ${v/$p/Q} ${v/"."/R} ${v/a/\\/} x${v//?/}x', "a b.c a.Q.c aRb.c /.b.c xx\n"),
    ("v=abcdef; echo ${v:1} ${v:1:3} ${v: -2} ${v:(-3):2} ${v:0:-1} ${v:i+1:1}", "bcdef bcd ef de abcdef b\n"),
    ('f=a.b.c; echo "${f%.*}" "${f%%.*}" "${f#"a."}" "${u:-"q"  r}"', "a.b a b.c q  r\n"),
])
def test_substitutions(sh: ShellRunner, command: str, out: str) -> None:
    assert sh(command).out == out


@pytest.mark.parametrize(("expression", "value"), [
    ("2147483647 + 1", "-2147483648"),
    ("1 << 32", "1"),
    ("-7 / 2", "-3"),
    ("-7 % 3", "-1"),
    ("-2147483648 / -1", "-2147483648"),
    ("010 + 0x1F + 2#101 + 36#z", "81"),
    ("5 > 3 ? 10 : 20", "10"),
    ("i = 5, i++ + ++i", "12"),
    ("1 < 2 == 1", "1"),
    ("~0", "-1"),
    ("x * 2", "6"),  # x='1+2' is evaluated as an expression
    ("0 && (y = 1)", "0"),  # a short-circuited side is not evaluated
    ("y + 0", "0"),
])
def test_arithmetic_as_mksh(sh: ShellRunner, expression: str, value: str) -> None:
    assert sh(f"x='1+2'; echo $(( {expression} ))").out == value + "\n"


def test_arithmetic_commands_and_errors(sh: ShellRunner) -> None:
    assert sh("i=0; ((i++)); echo $? $i; ((i-1)); echo $?; let 'j = 3 * 4' k=2; echo $j $k $?").out == (
        "1 1\n1\n12 2 0\n")
    failed = sh("(( 1/0 )); echo after $?")
    assert (failed.out, failed.err) == ("after 2\n", "/system/bin/sh: 1/0: zero divisor\n")
    aborted = sh("echo $((2+)); echo never")
    assert (aborted.out, aborted.status) == ("", 1)
    assert "unexpected 'end of expression'" in aborted.err
    assert sh("x=x; echo $((x))").err.endswith("expression recurses on parameter 'x'\n")
    assert sh("( (echo nested) ); if ((3 > 2)); then echo yes; fi").out == "nested\nyes\n"


def test_find_exec_and_xargs(sh: ShellRunner) -> None:
    sh("mkdir -p /data/local/tmp/d/e; echo hi > /data/local/tmp/d/a.txt; touch /data/local/tmp/d/e/b.txt")
    result = sh("cd /data/local/tmp; find d -name '*.txt' -exec echo got {} \\;; find d -type f -exec echo all {} +; "
                "find d -size +0c -type f; printf 'a\\nb\\n' | xargs -I X echo [X]; "
                "printf 'a\\0b c\\0' | xargs -0 -n1 echo")
    assert result.out == "got d/a.txt\ngot d/e/b.txt\nall d/a.txt d/e/b.txt\nd/a.txt\n[a]\n[b]\na\nb c\n"


def test_tar_never_writes_outside_the_folder_it_unpacks_in(sh: ShellRunner) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in ("../../escaped", "/absolute", "inside/ok"):
            info = tarfile.TarInfo(name)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"x\n"))
    sh.write("/data/local/tmp/evil.tar", buffer.getvalue())
    result = sh("cd /data/local/tmp && mkdir out && tar -xf evil.tar -C out && find out | sort; tar -tf evil.tar")
    assert result.out == "out\nout/absolute\nout/inside\nout/inside/ok\nabsolute\ninside/ok\n"
    assert not sh.fs.exists("/data/escaped") and not sh.fs.exists("/data/local/escaped")
