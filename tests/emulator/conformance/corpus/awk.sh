# awk: the one-liners run and benchmark scripts use

#### sum-column
printf 'a 1\nb 2\nc 3\n' | awk '{s += $2} END {print s, NR}'

#### field-separator
echo 'x:y:z' | awk -F: '{print $2, NF}'

#### assign-field-rebuilds
echo 'a b c' | awk '{$2 = "B"; print; print NF}'

#### ofs
echo 'a b c' | awk 'BEGIN {OFS="-"} {$1 = $1; print}'

#### patterns
printf '3\n10\n7\n' | awk '$1 > 5'

#### regex-pattern
printf 'ok 1\nfail 2\nok 3\n' | awk '/^ok/ {n++} END {print n}'

#### printf-formats
awk 'BEGIN {printf "%5.2f|%-4s|%03d|%x|%c|%e\n", 3.14159, "ab", 7, 255, 65, 1234.5}'

#### arrays-and-in
printf 'a\nb\na\n' | awk '{c[$1]++} END {print c["a"], c["b"], ("z" in c)}'

#### length-substr-index
awk 'BEGIN {s = "benchmark"; print length(s), substr(s, 6), substr(s, 1, 5), index(s, "mark")}'

#### split
awk 'BEGIN {n = split("a,b,,c", parts, ","); print n, parts[1], parts[4]}'

#### sub-gsub
echo 'aaa bbb' | awk '{gsub(/a/, "x"); sub(/b/, "[&]"); print}'

#### int-and-math
awk 'BEGIN {print int(3.9), int(-3.9), 7 % 3, 2 ^ 10, 10 / 4}'

#### number-output
awk 'BEGIN {print 0.1 + 0.2, 1e6, 1/3, 100}'

#### string-number-compare
printf '10\n9\n' | awk '{print ($1 < 9)}'; awk 'BEGIN {print ("10" < "9")}'

#### functions
awk 'function max(a, b) {return a > b ? a : b} BEGIN {print max(3, 7), max(9, 2)}'

#### nr-nf-last-field
printf 'a b c\nd e\n' | awk '{print NR, NF, $NF}'

#### range-pattern
seq 1 10 | awk 'NR == 3, NR == 5'

#### exit-status
seq 5 | awk 'NR == 2 {exit 3}'; echo "rc=$?"

#### end-after-exit
seq 5 | awk '{n++} NR == 2 {exit} END {print "n=" n}'

#### variables-v
awk -v name=run -v n=3 'BEGIN {print name, n + 1}'

#### tolower-toupper
echo 'MiXed' | awk '{print tolower($0), toupper($0)}'

#### match-rstart
echo 'time=123ms' | awk '{if (match($0, /[0-9]+/)) print RSTART, RLENGTH, substr($0, RSTART, RLENGTH)}'

#### while-for-loops
awk 'BEGIN {i = 0; while (i < 3) {printf "%d ", i; i++}; for (j = 3; j > 0; j--) printf "%d ", j; print ""}'

#### timings-summary
printf 'run 12.5\nrun 14.0\nrun 11.5\nrun 13.0\n' | awk '{t = $2; s += t; if (min == "" || t < min) min = t; if (t > max) max = t} END {printf "n=%d mean=%.2f min=%.1f max=%.1f\n", NR, s / NR, min, max}'

#### csv-to-table
printf 'model,ms\nmobilenet,12\nresnet,40\n' | awk -F, 'NR > 1 {printf "%-10s %5d\n", $1, $2}'

#### stops-a-producer
yes | awk 'NR == 3 {print NR; exit}'

#### files-and-fnr
printf 'a\nb\n' > f1; printf 'c\n' > f2; awk '{print FILENAME, FNR, NR}' f1 f2

#### output-redirection
awk 'BEGIN {print "one" > "out.txt"; print "two" > "out.txt"; close("out.txt"); while ((getline line < "out.txt") > 0) print "read", line}'

#### getline-var
printf 'a\nb\nc\n' | awk 'NR == 1 {getline nxt; print $0, nxt}'

#### delete
awk 'BEGIN {a[1]; a[2]; delete a[1]; for (k in a) print k; delete a; print length(a)}'

#### concatenation
awk 'BEGIN {x = "a" "b" 1 + 2; print x}'

#### uninitialized
awk 'BEGIN {print x + 0, "[" x "]", length(x)}'

#### increment
awk 'BEGIN {i = 5; print i++, i, ++i, i--, --i}'

#### multiple-rules-next
printf '1\n2\n3\n' | awk '$1 == 2 {print "two"; next} {print "other", $1}'

#### system
awk 'BEGIN {r = system("exit 3"); print "status", r}'
