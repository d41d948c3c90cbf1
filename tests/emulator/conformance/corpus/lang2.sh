# the shell language, continued: here-documents, redirections, options, jobs

#### here-document
x=world; cat <<END
hello $x
$(echo sub)
END
cat <<'END'
literal $x
END

#### here-string
tr a-z A-Z <<< "shout"

#### redirections
echo out > f; echo more >> f; cat f; ls nothing 2>/dev/null || echo missing

#### stderr-to-stdout
{ echo to-out; echo to-err >&2; } 2>&1 | wc -l

#### exec-redirect
exec 3> log; echo first >&3; echo second >&3; exec 3>&-; cat log

#### set-e
set -e; true; false; echo never

#### set-u
set -u; echo ${unset_var:-ok}; (echo $unset_var) 2>/dev/null || echo "failed $?"

#### pipefail
set -o pipefail; false | true; echo $?

#### trap-exit
trap 'echo cleanup $?' EXIT; echo working; exit 4

#### exit-status-propagation
sh -c 'exit 7'; echo $?

#### sh-c-args
sh -c 'echo $0 $1 $#' name first second

#### eval
cmd='echo evaluated'; eval "$cmd"; x=y; eval "$x=z"; echo $y

#### dot-source
echo 'sourced=yes' > lib.sh; . ./lib.sh; echo $sourced

#### getopts
while getopts 'ab:' o -a -b val rest; do echo "$o ${OPTARG:-}"; done

#### getopts-script
cat > tool.sh <<'END'
n=1; v=0
while getopts 'n:v' opt; do case $opt in n) n=$OPTARG;; v) v=1;; *) exit 2;; esac; done
shift $((OPTIND - 1)); echo "n=$n v=$v rest=$*"
END
sh tool.sh -v -n 5 a b; sh tool.sh -x 2>/dev/null; echo "rc=$?"

#### break-continue
for i in 1 2 3 4 5; do [ $i = 2 ] && continue; [ $i = 4 ] && break; echo $i; done

#### nested-loops-break-2
for i in 1 2; do for j in a b; do [ $j = b ] && break 2; echo $i$j; done; done

#### test-operators
[ 3 -lt 5 ] && echo lt; [ abc = abc ] && echo eq; [ -z "" ] && echo empty; [ -n x ] && echo nonempty; [ ! 1 -eq 2 ] && echo not

#### test-files
mkdir d; touch f; [ -d d ] && echo dir; [ -f f ] && echo file; [ -e nothing ] || echo absent; [ -s f ] || echo zero

#### double-brackets
x=hello; [[ $x == h* ]] && echo glob; [[ -n $x && $x != world ]] && echo both; [[ a < b ]] && echo less

#### background-wait
(echo job; exit 3) & wait $!; echo "status $?"

#### kill-check
sleep 10 & pid=$!; kill -0 $pid && echo running; kill $pid; wait $pid >/dev/null; kill -0 $pid 2>/dev/null || echo ended

#### wait-all
for i in 1 2 3; do (echo "job $i" > out.$i) & done; wait; cat out.1 out.2 out.3

#### pipeline-streaming
yes | head -n 2; seq 1 1000000 | head -n 1

#### pipeline-subshell
x=1; echo 2 | read x; echo $x

#### globbing
touch b.txt a.txt c.log; echo *.txt; echo ?.log; echo [ab]*; echo none*

#### cd-and-pwd
mkdir -p sub/dir; cd sub/dir; basename "$(pwd)"; cd - >/dev/null; [ "$PWD" = "$(pwd)" ] && echo same

#### read-ifs
echo 'k=v' | { IFS== read key value; echo "$key -> $value"; }

#### printf
printf '%s|%5s|%-5s|%d|%03d|%x|%.2f\n' a b c 42 7 255 3.14159; printf '%s\n' x y z

#### echo-escapes
echo 'a\tb'; echo -n no-newline; echo; echo -e 'x\ny'

#### command-v
command -v ls >/dev/null && echo found

#### special-parameters
f() { echo $# $?; }; false; f a b; echo $$ | grep -c '^[0-9][0-9]*$'

#### expr
expr 3 + 4 \* 2; expr length hello; expr abc : 'a\(.\)'; expr 5 \> 3; expr 0; echo "rc=$?"

#### timeout
timeout 0.2 sleep 5; echo "rc=$?"

#### od-base64-cmp
printf 'hello world\n12345' > in; od in; od -A x -t x1 in; od -An -t x1 in; od -A d -t c in
printf abc | base64; printf 'YWJj\n' | base64 -d; echo
printf 'a\nb\n' > c1; printf 'a\nc\n' > c2; cmp -s c1 c2; echo "rc=$?"; cmp -s c1 c1; echo "rc=$?"

#### nice
nice -n 5 echo niced

#### sort-uniq-cut
printf 'b 2\na 1\nb 2\nc 3\n' | sort | uniq -c; printf 'x,y,z\n' | cut -d, -f2,3

#### sort-numeric-reverse
printf '10\n9\n100\n' | sort -n; printf '10\n9\n100\n' | sort -rn

#### tr
echo hello | tr a-z A-Z; echo 'a  b' | tr -s ' '; echo abc | tr -d b

#### seq-and-wc
seq 3; seq 2 2 8 | wc -l

#### head-tail-forms
seq 20 > n; head -n1 n; head -1 n; head -n 2 n; tail -n 2 n; tail -n +19 n; head -c 3 n; echo

#### basename-dirname
basename /a/b/c.txt .txt; dirname /a/b/c.txt; dirname file

#### xargs
printf 'a\nb\nc\n' | xargs echo; printf '1 2 3 4\n' | xargs -n 2 echo

#### find-basics
mkdir -p d/e; touch d/a.txt d/e/b.txt d/c.log; find d -name '*.txt' | sort; find d -type d | sort

#### mkdir-cp-mv-rm
mkdir -p x/y; echo data > x/y/f; cp x/y/f g; mv g h; cat h; rm -r x; [ -e x ] || echo gone

#### md5-sha
printf 'abc' > f; md5sum f; sha256sum f

#### find-exec
mkdir -p d/e; echo hi > d/a.txt; touch d/e/b.txt; find d -name '*.txt' -exec echo got {} \; | sort; find d -type f -exec ls {} + | sort

#### find-size-mtime
mkdir d; echo data > d/big; touch d/empty; find d -type f -size +0c; find d -type f -mtime -1 | sort

#### xargs-nul
printf 'a\0b c\0' | xargs -0 -n1 echo

#### results-loop-with-find
for i in 1 2 3; do mkdir -p Result_$i; echo "$((i * 10))" > Result_$i/time.txt; done
find . -name time.txt | sort | xargs cat | awk '{s += $1} END {print "total", s}'

#### gzip-round-trip
seq 1 1000 > data; gzip -c data > data.gz; gunzip -c data.gz | tail -n 1; zcat data.gz | wc -l

#### gzip-in-place
echo hello > f; gzip f; ls; gunzip f.gz; cat f

#### tar-results
for i in 1 2; do mkdir -p results/Result_$i; echo "run $i" > results/Result_$i/log.txt; done
tar -czf results.tgz results; tar -tzf results.tgz | sort; mkdir out; tar -xzf results.tgz -C out; cat out/results/Result_2/log.txt

#### tar-plain
mkdir d; echo a > d/a; tar cf d.tar d; rm -r d; tar xf d.tar; cat d/a

#### diff-unified
printf 'a\nb\nc\n' > d1; printf 'a\nB\nc\nd\n' > d2; diff -u d1 d2 | tail -n +3; echo "rc=$?"; diff d1 d1; echo "rc=$?"

#### dd
seq 1 100 > in; dd if=in of=out bs=10 count=2 skip=1 2>/dev/null; cat out; echo; head -c 5 in | dd 2>/dev/null | wc -c
