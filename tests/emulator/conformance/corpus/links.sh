# links, processes and modes: symbolic links, $$ of a child shell, /proc/self, chmod'ed modes in ls

#### symlink-to-a-file
echo hi > f
ln -s f l
cat l
readlink l
[ -L l ] && echo link
[ -L f ] || echo not-a-link

#### symlink-to-a-folder
mkdir -p d/sub
echo x > d/a
ln -s d ld
ls ld
cat ld/a
ls -ld ld | cut -c1
rm ld
ls
[ -d d ] && echo kept

#### symlink-chain
mkdir a
echo v > a/t
ln -s t a/l1
ln -s a/l1 l2
cat l2
readlink -f l2 | sed 's|.*/||'

#### symlink-dangling
ln -s nowhere dang
[ -e dang ] || echo dangling
[ -L dang ] && echo still-a-link
echo made > dang
cat nowhere

#### symlink-replace-with-n
mkdir d1 d2
ln -s d1 cur
ln -sfn d2 cur
readlink cur
ln -s d1 cur
ls d2

#### symlink-find-type
mkdir d
touch d/f
ln -s f d/l
find d -type l
find d -type f

#### symlink-loop
ln -s l1 l2
ln -s l2 l1
cat l1 2>/dev/null
echo $?

#### symlink-mv-and-rm
echo data > t
ln -s t l
mv l m
readlink m
rm m
cat t

#### child-shell-pid
echo $$ > p
sh -c 'echo $$' > c
sh -c 'echo $PPID' > pp
[ "$(cat p)" != "$(cat c)" ] && echo own-pid
[ "$(cat p)" = "$(cat pp)" ] && echo parent-is-us

#### proc-self-is-the-reader
read pid rest < /proc/self/stat
[ "$pid" = "$$" ] && echo shell
sh -c 'read p r < /proc/self/stat; [ "$p" = "$$" ] && echo child'

#### chmod-modes-in-ls
touch f
chmod 640 f
mkdir d
chmod 750 d
ls -ld f d | cut -c1-10
chmod 0 f
ls -l f | cut -c1-10
