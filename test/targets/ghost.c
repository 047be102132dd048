/*
 * ghost: files deleted while in use.
 *   shared.bin   64 KiB, open O_RDWR at offset 1000 and mapped MAP_SHARED, then unlinked; a
 *                forked child shares the mapping
 *   private.bin  16 KiB mapped MAP_PRIVATE with its first page changed, then unlinked
 * After go: the child writes a marker into the shared mapping and exits; the parent checks the
 * file is still deleted, its contents through the fd and the mappings, the offset, the private
 * copy, and that the child's marker is in the file (one file, shared as before).
 *   gone.d       a directory open in the parent and the child's cwd, then removed: both still
 *                refer to the removed directory after restore
 *   fifo         a FIFO open read-write with "fifodata" in it, then removed
 *   mynull       a node of /dev/null's device (mknod c 1 3) open read-write, then removed
 */
#include "common.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

#define SHARED (64 * 1024)
#define PRIV (16 * 1024)

static void make(const char *name, size_t len, uint64_t seed, int *fdp)
{
	static char buf[SHARED];
	pattern_fill(buf, len, seed);
	if (write_file(name, buf, len))
		DIE("write %s", name);
	int fd = open(name, O_RDWR);
	if (fd < 0)
		DIE("open %s", name);
	*fdp = fd;
}

int main(void)
{
	int sfd, pfd;
	make("shared.bin", SHARED, 21, &sfd);
	char *sh = mmap(NULL, SHARED, PROT_READ | PROT_WRITE, MAP_SHARED, sfd, 0);
	make("private.bin", PRIV, 22, &pfd);
	char *pv = mmap(NULL, PRIV, PROT_READ | PROT_WRITE, MAP_PRIVATE, pfd, 0);
	if (sh == MAP_FAILED || pv == MAP_FAILED)
		DIE("mmap");
	close(pfd);
	memset(pv, 0x5a, 4096); /* a private copy of the first page */
	lseek(sfd, 1000, SEEK_SET);
	unlink("shared.bin");
	unlink("private.bin");
	static char go_abs[256];
	if (!getcwd(go_abs, sizeof(go_abs) - 4))
		DIE("getcwd");
	strcat(go_abs, "/go");
	go_path = go_abs;
	if (mkdir("gone.d", 0750))
		DIE("mkdir");
	int dfd = open("gone.d", O_RDONLY | O_DIRECTORY);
	int sync[2];
	if (pipe(sync))
		DIE("pipe");
	pid_t kid = fork();
	if (kid == 0) {
		if (chdir("gone.d"))
			_exit(3);
		close(sync[0]);
		close(sync[1]); /* the parent sees EOF: we are in gone.d */
		wait_go();
		char cwd[256] = "";
		ssize_t n = readlink("/proc/self/cwd", cwd, sizeof(cwd) - 1);
		if (n < 0 || !strstr(cwd, "gone.d (deleted)"))
			_exit(4);
		memcpy(sh + 8, "child-was-here", 14);
		_exit(0);
	}
	close(sync[1]);
	char c;
	if (read(sync[0], &c, 1) != 0)
		DIE("sync");
	close(sync[0]);
	if (rmdir("gone.d"))
		DIE("rmdir");
	if (mkfifo("fifo", 0640) < 0)
		DIE("mkfifo");
	int ffd = open("fifo", O_RDWR);
	if (ffd < 0 || write(ffd, "fifodata", 8) != 8 || unlink("fifo"))
		DIE("deleted fifo");
	if (mknod("mynull", S_IFCHR | 0600, makedev(1, 3)) < 0)
		DIE("mknod");
	int nfd = open("mynull", O_RDWR);
	if (nfd < 0 || unlink("mynull"))
		DIE("deleted device node");
	ready();
	wait_go();
	int st = 0;
	CHECK(waitpid(kid, &st, 0) == kid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status 0x%x", st);
	struct stat s;
	CHECK(fstat(sfd, &s) == 0 && s.st_nlink == 0 && s.st_size == SHARED, "shared.bin: nlink %ld size %ld", (long)s.st_nlink,
	      (long)s.st_size);
	CHECK(lseek(sfd, 0, SEEK_CUR) == 1000, "offset %ld", (long)lseek(sfd, 0, SEEK_CUR));
	static char buf[SHARED];
	CHECK(pread(sfd, buf, SHARED, 0) == SHARED, "pread");
	CHECK(memcmp(buf + 8, "child-was-here", 14) == 0, "the child's write is not in the file: not shared");
	CHECK(pattern_check_part(buf, 24, SHARED - 24, 21) < 0, "shared.bin contents differ");
	CHECK(memcmp(sh, buf, SHARED) == 0, "the mapping and the file differ");
	CHECK(pv[0] == 0x5a && pv[4095] == 0x5a, "private copy lost");
	CHECK(pattern_check_part(pv, 4096, PRIV - 4096, 22) < 0, "private.bin contents differ");
	struct stat ds;
	CHECK(fstat(dfd, &ds) == 0 && S_ISDIR(ds.st_mode) && ds.st_nlink == 0 && (ds.st_mode & 0777) == 0750, "removed directory: nlink %ld mode 0%o",
	      (long)ds.st_nlink, ds.st_mode & 07777);
	struct stat fst, nst;
	CHECK(fstat(ffd, &fst) == 0 && S_ISFIFO(fst.st_mode) && fst.st_nlink == 0 && (fst.st_mode & 0777) == 0640,
	      "deleted FIFO: mode 0%o, %ld links", fst.st_mode, (long)fst.st_nlink);
	char fb[16] = { 0 };
	CHECK(read(ffd, fb, sizeof(fb)) == 8 && !memcmp(fb, "fifodata", 8), "deleted FIFO holds '%s'", fb);
	CHECK(fstat(nfd, &nst) == 0 && S_ISCHR(nst.st_mode) && nst.st_rdev == makedev(1, 3) && nst.st_nlink == 0,
	      "deleted device node: mode 0%o rdev %lx, %ld links", nst.st_mode, (unsigned long)nst.st_rdev, (long)nst.st_nlink);
	CHECK(write(nfd, "x", 1) == 1, "cannot write to the deleted /dev/null node");
	char maps[8192];
	CHECK(read_file("/proc/self/maps", maps, sizeof(maps)) > 0 && strstr(maps, "shared.bin (deleted)"), "maps: not a deleted file");
	return finish();
}
