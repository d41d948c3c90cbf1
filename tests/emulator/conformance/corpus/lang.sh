# the shell language: one construct each

#### for-loop
for i in 1 2 3; do echo "i=$i"; done

#### while-read
printf 'a b\nc d\n' | while read x y; do echo "$y-$x"; done

#### until
n=0; until [ $n -ge 3 ]; do n=$((n + 1)); done; echo $n

#### case
for f in a.txt b.log c; do case $f in *.txt) echo "text $f";; *.log|*.err) echo "log $f";; *) echo "other $f";; esac; done

#### functions-and-return
f() { echo "args=$# first=$1"; return 3; }; f a b; echo "rc=$?"

#### local
x=outer; f() { local x=inner; echo $x; }; f; echo $x

#### and-or
true && echo yes; false || echo no; false && echo never; echo "rc=$?"

#### negation
! false && echo negated

#### subshell-isolation
x=1; (x=2; cd /; echo "in $x"); echo "out $x"

#### brace-group-redirect
{ echo one; echo two; } > out; wc -l < out

#### command-substitution
x=$(echo hello | tr a-z A-Z); echo "$x" `echo back`

#### arithmetic
i=5; echo $((i * 2 + 1)) $((i / 2)) $((i % 3)) $((-i)) $((i << 2)) $((i > 3 ? 10 : 20))

#### arithmetic-32-bit
echo $((2147483647 + 1)) $((0x10)) $((16#ff)) $((010))

#### arithmetic-command
i=0; while ((i < 3)); do ((i++)); done; echo $i; let 'j = i * 3'; echo $j

#### parameter-defaults
unset u; echo ${u:-default} ${u-unset}; e=; echo "[${e:-empty}]" "[${e-set}]"; echo ${u:=assigned} $u

#### parameter-trim
f=/data/results/run_01.log; echo ${f##*/} ${f%.log} ${f#/data/} ${f%%_*} ${#f}

#### parameter-replace
v=a-b-c; echo ${v/-/_} ${v//-/_} ${v/#a/A} ${v/%c/C}

#### parameter-substring
v=benchmark; echo ${v:5} ${v:0:5} ${v: -4}

#### positional
set -- one "two words" three; echo $#; for a in "$@"; do echo "[$a]"; done; shift; echo $1

#### star-vs-at
set -- a b; IFS=,; echo "$*"; IFS=' '; echo "$@"

#### ifs-splitting
line='a:b::c'; IFS=:; set -- $line; echo $#; IFS=' '

#### quoting
echo 'single $x' "double $((1+1))" \$escaped "a\"b"

