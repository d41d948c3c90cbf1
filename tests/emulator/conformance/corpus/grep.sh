# grep: POSIX basic and extended expressions, and the options scripts use

#### basic-literals
printf 'a+b\naab\na|b\n(x)\n' > f
grep 'a+b' f; grep 'a|b' f; grep '(x)' f; grep -c 'a\{2\}b' f

#### basic-star-first
printf '*y\nxy\n' | grep '*y'

#### basic-groups-backref
printf 'abab\nabba\n' | grep '\(ab\)\1'

#### extended
printf 'ab\nabcd\nxyz\n' | grep -E '^(ab|xy)' ; printf 'color\ncolour\n' | grep -E 'colou?r' | wc -l

#### extended-interval
printf 'aa\naaa\na\n' | grep -xE 'a{2,3}'

#### brackets-classes
printf 'a1\nb\n2c\n \n' | grep '[[:digit:]]'; printf 'a]b\na\\b\n' | grep -c '[]\]'

#### fixed
printf 'a.b\naxb\n' | grep -F 'a.b'

#### only-matching
printf 'one two three\nfour\n' | grep -o 't[a-z]*'; printf 'abc abd\n' | grep -on 'ab.'

#### ignore-case-word-line
printf 'Foo\nfoobar\nfoo bar\n' | grep -iw foo; printf 'x\nxx\n' | grep -x x

#### invert-count
printf 'a\nb\nc\n' > f; grep -v b f; grep -vc b f; grep -c z f; echo "rc=$?"

#### context
seq 1 10 > f; grep -A1 -B1 -n -e 4 -e 8 f; echo ---; grep -C1 5 f

#### max-count
seq 1 100 | grep -m2 1

#### max-count-ends-a-producer
yes abc | grep -m1 b

#### quiet
printf 'a\nb\n' | grep -q b && echo found; grep -q zz /dev/null || echo none

#### files-names
printf 'x\n' > a; printf 'y\nx\n' > b; grep -n x a b; grep -l y a b; grep -L y a b; grep -h x a b; grep -H x a

#### missing-file
printf 'x\n' > a; grep x a nofile 2>/dev/null; echo "rc=$?"; grep -s x nofile; echo "rc=$?"

#### recursive
mkdir -p d/sub; printf 'two\n' > d/a; printf 'two too\n' > d/sub/b; grep -r two d | sort; grep -rl two . | sort

#### patterns-file
printf 'one\nthree\n' > p; seq 1 5 | sed 's/1/one/;s/3/three/' | grep -f p

#### anchors-in-middle
printf 'x^y$z\n' | grep 'x^y$z'; printf 'end$\n' | grep -c 'd\$$'

#### exit-codes
echo a | grep b; echo "rc=$?"; echo a | grep -E '('; echo "rc=$?"
