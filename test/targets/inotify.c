/*
 * inotify: an instance (O_NONBLOCK) watching directory d (IN_CREATE, wd 1), w.txt (IN_MODIFY, wd 2)
 * and y.txt (IN_MODIFY, wd 4: wd 3 was removed again). After go it creates a file and writes to
 * both files, and expects exactly those events under the same watch descriptors.
 */
#include "common.h"

#include <sys/inotify.h>
#include <sys/stat.h>

static char evbuf[4096] __attribute__((aligned(8)));

int main(void)
{
	if (mkdir("d", 0755) || write_file("w.txt", "w", 1) || write_file("x.txt", "x", 1) || write_file("y.txt", "y", 1))
		DIE("files");
	int fd = inotify_init1(IN_NONBLOCK);
	int w1 = inotify_add_watch(fd, "d", IN_CREATE); /* not the cwd: the go file appears there */
	int w2 = inotify_add_watch(fd, "w.txt", IN_MODIFY);
	int w3 = inotify_add_watch(fd, "x.txt", IN_MODIFY);
	inotify_rm_watch(fd, w3);
	int w4 = inotify_add_watch(fd, "y.txt", IN_MODIFY);
	if (w1 != 1 || w2 != 2 || w3 != 3 || w4 != 4)
		DIE("watch descriptors %d %d %d %d", w1, w2, w3, w4);
	while (read(fd, evbuf, sizeof(evbuf)) > 0) /* the IN_IGNORED of wd 3 */
		;
	ready();
	wait_go();
	CHECK(read(fd, evbuf, sizeof(evbuf)) < 0 && errno == EAGAIN, "events queued before go, or O_NONBLOCK lost");
	if (write_file("d/new.txt", "n", 1))
		fail("cannot create d/new.txt");
	int f = open("w.txt", O_WRONLY | O_APPEND);
	CHECK(write(f, "1", 1) == 1, "write w.txt");
	close(f);
	f = open("y.txt", O_WRONLY | O_APPEND);
	CHECK(write(f, "1", 1) == 1, "write y.txt");
	close(f);
	ssize_t n = read(fd, evbuf, sizeof(evbuf));
	int created = 0, mod_w = 0, mod_y = 0, other = 0;
	for (ssize_t off = 0; off < n;) {
		struct inotify_event *e = (struct inotify_event *)(evbuf + off);
		if (e->wd == 1 && (e->mask & IN_CREATE) && e->len && strcmp(e->name, "new.txt") == 0)
			created++;
		else if (e->wd == 2 && (e->mask & IN_MODIFY))
			mod_w++;
		else if (e->wd == 4 && (e->mask & IN_MODIFY))
			mod_y++;
		else
			other++;
		off += (ssize_t)sizeof(*e) + e->len;
	}
	CHECK(created >= 1 && mod_w >= 1 && mod_y >= 1 && other == 0, "events: created %d, w %d, y %d, other %d (read %zd)", created,
	      mod_w, mod_y, other, n);
	return finish();
}
