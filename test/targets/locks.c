/*
 * locks: file locks of every kind, held by a parent and its child.
 *   a   flock(LOCK_EX) by the parent
 *   b   POSIX write lock on bytes 10-19 and read lock from 100 to EOF by the parent; POSIX read
 *       lock on 50-59 by the child
 *   c   OFD write lock on bytes 0-99 (owned by the open file description)
 *   d   a read lease (F_SETLEASE F_RDLCK) by the parent, e a write lease by the child: each
 *       checked with F_GETLEASE by its holder (opening the file to test it would start a break)
 * After go a helper forked then (holding no lock) probes each: a conflicting lock must be
 * refused and F_GETLK must name the same owner as before the checkpoint.
 */
#include "common.h"

#include <sys/file.h>
#include <sys/wait.h>

static int setlk(int fd, int cmd, short type, off_t start, off_t len)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len };
	return fcntl(fd, cmd, &fl);
}

/* Who holds a lock conflicting with a write lock on [start, start+len): pid, or 0 if none. */
static int owner(int fd, int cmd, off_t start, off_t len)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = start, .l_len = len };
	if (fcntl(fd, cmd, &fl))
		return -2;
	return fl.l_type == F_UNLCK ? 0 : fl.l_pid;
}

static int probe(pid_t parent, pid_t kid)
{
	int ok = 1;
	int a = open("a", O_RDWR), b = open("b", O_RDWR), c = open("c", O_RDWR);
	if (flock(a, LOCK_SH | LOCK_NB) == 0 || errno != EWOULDBLOCK) {
		say("detail: flock on a is not held");
		ok = 0;
	}
	int o1 = owner(b, F_GETLK, 10, 10), o2 = owner(b, F_GETLK, 200, 1), o3 = owner(b, F_GETLK, 50, 10), o4 = owner(b, F_GETLK, 30, 10);
	if (o1 != parent || o2 != parent || o3 != kid || o4 != 0) {
		say("detail: POSIX owners %d %d %d %d, expected %d %d %d 0", o1, o2, o3, o4, parent, parent, kid);
		ok = 0;
	}
	if (setlk(b, F_SETLK, F_RDLCK, 100, 10) != 0) { /* read locks share */
		say("detail: a read lock beside the read lock was refused");
		ok = 0;
	}
	if (owner(c, F_OFD_GETLK, 0, 100) != -1 || setlk(c, F_OFD_SETLK, F_RDLCK, 50, 1) == 0) {
		say("detail: OFD lock on c is not held");
		ok = 0;
	}
	return ok;
}

int main(void)
{
	if (write_file("a", "a", 1) || write_file("b", "b", 1) || write_file("c", "c", 1) || write_file("d", "d", 1) ||
	    write_file("e", "e", 1))
		DIE("files");
	int a = open("a", O_RDWR), b = open("b", O_RDWR), c = open("c", O_RDWR), d = open("d", O_RDONLY);
	if (fcntl(d, F_SETLEASE, F_RDLCK))
		DIE("read lease");
	if (flock(a, LOCK_EX) || setlk(b, F_SETLK, F_WRLCK, 10, 10) || setlk(b, F_SETLK, F_RDLCK, 100, 0) ||
	    setlk(c, F_OFD_SETLK, F_WRLCK, 0, 100))
		DIE("lock");
	pid_t kid = fork();
	if (kid == 0) {
		if (setlk(b, F_SETLK, F_RDLCK, 50, 10))
			_exit(3);
		int e = open("e", O_RDWR);
		if (e < 0 || fcntl(e, F_SETLEASE, F_WRLCK))
			_exit(4);
		wait_go();
		if (fcntl(e, F_GETLEASE) != F_WRLCK)
			_exit(5);
		sleep_ms(500); /* hold the lock while the parent probes */
		_exit(0);
	}
	sleep_ms(50);
	ready();
	wait_go();
	pid_t helper = fork();
	if (helper == 0)
		_exit(probe(getpid() == 0 ? 0 : getppid(), kid) ? 0 : 1);
	int st = 0;
	CHECK(waitpid(helper, &st, 0) == helper && WIFEXITED(st) && WEXITSTATUS(st) == 0, "probe failed (0x%x)", st);
	CHECK(waitpid(kid, &st, 0) == kid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status 0x%x", st);
	CHECK(fcntl(d, F_GETLEASE) == F_RDLCK, "F_GETLEASE on d: %d, not F_RDLCK", fcntl(d, F_GETLEASE));
	CHECK(flock(a, LOCK_UN) == 0 && setlk(b, F_SETLK, F_UNLCK, 0, 0) == 0, "cannot unlock");
	return finish();
}
