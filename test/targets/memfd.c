/*
 * memfd: a sealed memfd ("cryo-test", 1 MiB of data then a 1 MiB hole) open twice (offset 5000,
 * and a read-only second description at 0) and mapped MAP_SHARED in a parent and its child; a
 * second memfd ("map-only") reachable only through a mapping. After go the child writes a
 * marker through its mapping and exits; the parent checks name, size, seals, both positions,
 * the contents, and that the child's marker is in the file (one memfd, shared as before).
 */
#include "common.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define DATA (1 << 20)
#define SIZE (2 << 20)

int main(void)
{
	int fd = memfd_create("cryo-test", MFD_ALLOW_SEALING);
	int other = memfd_create("map-only", 0);
	if (fd < 0 || other < 0)
		DIE("memfd_create");
	static char buf[SIZE];
	pattern_fill(buf, DATA, 41);
	if (write(fd, buf, DATA) != DATA || ftruncate(fd, SIZE))
		DIE("fill");
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	int ro = open(path, O_RDONLY);
	lseek(fd, 5000, SEEK_SET);
	char *map = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (ftruncate(other, 8192) || write(other, "only-in-a-mapping", 17) != 17)
		DIE("other");
	char *omap = mmap(NULL, 8192, PROT_READ, MAP_SHARED, other, 0);
	close(other);
	if (ro < 0 || map == MAP_FAILED || omap == MAP_FAILED)
		DIE("open/mmap");
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW))
		DIE("seal");
	pid_t kid = fork();
	if (kid == 0) {
		wait_go();
		memcpy(map + DATA + 100, "child-marker", 12);
		_exit(0);
	}
	ready();
	wait_go();
	int st = 0;
	CHECK(waitpid(kid, &st, 0) == kid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status 0x%x", st);
	CHECK(fcntl(fd, F_GET_SEALS) == (F_SEAL_SHRINK | F_SEAL_GROW), "seals 0x%x", fcntl(fd, F_GET_SEALS));
	CHECK(ftruncate(fd, 4096) < 0 && errno == EPERM, "shrinking was not refused");
	struct stat s;
	CHECK(fstat(fd, &s) == 0 && s.st_size == SIZE, "size %ld", (long)s.st_size);
	CHECK(lseek(fd, 0, SEEK_CUR) == 5000 && lseek(ro, 0, SEEK_CUR) == 0, "positions %ld %ld", (long)lseek(fd, 0, SEEK_CUR),
	      (long)lseek(ro, 0, SEEK_CUR));
	CHECK((fcntl(ro, F_GETFL) & O_ACCMODE) == O_RDONLY, "second description is not read-only");
	static char back[SIZE];
	CHECK(pread(ro, back, SIZE, 0) == SIZE, "pread");
	CHECK(pattern_check(back, DATA, 41) < 0, "data differs");
	CHECK(memcmp(back + DATA + 100, "child-marker", 12) == 0, "the child's write is not in the memfd: not shared");
	CHECK(all_zero(back + DATA + 112, SIZE - DATA - 112), "the hole is not zero");
	CHECK(memcmp(omap, "only-in-a-mapping", 17) == 0, "the mapped-only memfd lost its contents");
	char link[128] = "";
	CHECK(readlink(path, link, sizeof(link) - 1) > 0 && strcmp(link, "/memfd:cryo-test (deleted)") == 0, "fd link %s", link);
	return finish();
}
