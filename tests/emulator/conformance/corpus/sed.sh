# sed: substitutions, addresses, the hold space, in-place edits

#### s-global
printf 'a a a\nb\n' | sed 's/a/x/g'

#### s-print
printf 'aaa\nbbb\n' | sed -n 's/a/x/p'

#### s-groups-and-ampersand
printf 'hello world\n' | sed 's/\(hello\) \(w[a-z]*\)/\2 \1 [&]/'

#### s-extended
printf 'key=value\n' | sed -E 's/([a-z]+)=([a-z]+)/\2:\1/'

#### s-empty-matches
printf 'abc\n' | sed 's/b*/X/g'

#### s-delimiters
printf '/a/b/c\n' | sed 's|/|_|g; s,_,:,'

#### s-newline-in-replacement
printf 'a,b\n' | sed 's/,/\
/'

#### s-case-insensitive
printf 'Foo FOO foo\n' | sed 's/foo/bar/gI'

#### n-and-p
seq 1 5 | sed -n '2p;4p'

#### delete-range
seq 1 6 | sed '2,4d'

#### regex-range
printf 'a\nSTART\nb\nc\nEND\nd\n' | sed -n '/START/,/END/p'

#### last-line
seq 1 3 | sed -n '$p'; seq 1 3 | sed '$d'

#### negation
seq 1 4 | sed -n '2!p'

#### plus-range
seq 1 6 | sed -n '/2/,+2p'

#### quit
seq 1 100 | sed 3q; seq 1 5 | sed -n '2{p;q}'

#### quit-status
echo a | sed 'q5'; echo "rc=$?"

#### append-insert-change
printf 'a\nb\n' | sed '1a after a'; printf 'a\nb\n' | sed '2i before b'; printf 'a\nb\nc\n' | sed '2c changed'

#### change-range
seq 1 5 | sed '2,4c gone'

#### hold-space-reverse
printf '1\n2\n3\n' | sed -n '1!G;h;$p'

#### join-lines
printf 'a\nb\nc\nd\n' | sed 'N;s/\n/+/'; printf 'a\nb\nc\n' | sed '$!N;s/\n/-/'

#### branch-loop
printf 'a  b    c\n' | sed ':a;s/  / /;ta'

#### line-numbers
printf 'x\ny\n' | sed -n '='; printf 'x\ny\n' | sed -n '$='

#### transliterate
echo hello | sed 'y/abcdefghij/ABCDEFGHIJ/'

#### blocks
seq 1 6 | sed -n '/[24]/{s/$/ even/;p}'

#### several-e
echo abc | sed -e 's/a/A/' -e 's/c/C/'

#### script-file
printf 's/one/1/\ns/two/2/\n' > prog.sed; printf 'one two\n' | sed -f prog.sed

#### in-place
printf 'port=1\nhost=x\n' > conf; sed -i 's/port=.*/port=8080/' conf; cat conf

#### in-place-several-files
printf 'a\n' > f1; printf 'a\nb\n' > f2; sed -i '1d' f1 f2; wc -l f1 f2

#### files-concatenated
printf 'a\nb\n' > f1; printf 'c\n' > f2; sed -n '$p' f1 f2; sed -s -n '$p' f1 f2

#### no-final-newline
printf 'a\nb' | sed 's/b/c/'; echo; printf 'x' | sed p; echo

#### delete-first-line-of-pair
printf 'a\nb\nc\n' | sed '$!N;P;D'

#### unambiguous
printf 'a\tb\\c\n' | sed -n l

#### write-file
printf 'a1\nb\na2\n' | sed -n '/a/w matched'; cat matched

#### stop-a-producer
yes line | sed -n '3{p;q}'

#### bracket-with-delimiter
echo 'a/b' | sed 's/[/]/-/'

#### anchors
printf 'ab\n' | sed 's/^/>/;s/$/</'

#### csv-column
printf 'name,ms\nrun1,12\nrun2,15\n' | sed -n '2,$s/^[^,]*,//p'
