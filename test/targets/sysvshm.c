/*
 * sysvshm: SysV shared memory attached by a parent and its child.
 *   A  IPC_PRIVATE, 64 KiB of pattern, removed (IPC_RMID) while attached: it must come back
 *      under the same id, still marked removed
 *   B  a keyed segment (8 KiB, mode 0640) that is not removed: same id and key after restore
 * After go the child writes a marker into both and exits; the parent sees the markers (shared,
 * not copies), the pattern, the ids, key and mode. It removes B at the end.
 */
#include "common.h"

#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/wait.h>

#define ASIZE (64 * 1024)

int main(void)
{
	key_t key = (key_t)(0x43520000 | (getpid() & 0xffff));
	int a = shmget(IPC_PRIVATE, ASIZE, 0600);
	int b = shmget(key, 8192, 0640 | IPC_CREAT | IPC_EXCL);
	if (a < 0 || b < 0)
		DIE("shmget");
	char *pa = shmat(a, NULL, 0), *pb = shmat(b, NULL, 0);
	if (pa == (void *)-1 || pb == (void *)-1)
		DIE("shmat");
	pattern_fill(pa, ASIZE, 51);
	memcpy(pb, "B-data", 6);
	shmctl(a, IPC_RMID, NULL);
	pid_t kid = fork();
	if (kid == 0) {
		wait_go();
		memcpy(pa + 16, "child-in-A", 10);
		memcpy(pb + 100, "child-in-B", 10);
		_exit(0);
	}
	ready();
	wait_go();
	int st = 0;
	CHECK(waitpid(kid, &st, 0) == kid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status 0x%x", st);
	CHECK(memcmp(pa + 16, "child-in-A", 10) == 0, "the child's write to A is not seen: not shared");
	CHECK(memcmp(pb + 100, "child-in-B", 10) == 0, "the child's write to B is not seen: not shared");
	CHECK(pattern_check_part(pa, 32, ASIZE - 32, 51) < 0 && memcmp(pb, "B-data", 6) == 0, "contents differ");
	struct shmid_ds ds;
	CHECK(shmctl(a, IPC_STAT, &ds) == 0 && (ds.shm_perm.mode & SHM_DEST) && ds.shm_segsz == ASIZE, "segment A: id %d %s", a,
	      strerror(errno));
	CHECK(shmctl(b, IPC_STAT, &ds) == 0 && ds.shm_perm.__key == key && (ds.shm_perm.mode & 0777) == 0640 && !(ds.shm_perm.mode & SHM_DEST),
	      "segment B: id %d key 0x%x mode 0%o", b, ds.shm_perm.__key, ds.shm_perm.mode);
	shmctl(b, IPC_RMID, NULL);
	return finish();
}
