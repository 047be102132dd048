/*
 * inotify: an instance (O_NONBLOCK) watching directory d (IN_CREATE|IN_DELETE, wd 1), w.txt
 * (IN_MODIFY, wd 2), y.txt (IN_MODIFY, wd 4: wd 3 was removed again) and d/z.txt (IN_MODIFY|
 * IN_ATTRIB, wd 5), which is then deleted while kept open (as `tail -f` of a rotated log). After
 * go it creates a file, writes to the three files, and expects exactly those events under the
 * same watch descriptors: none left over from the restore (the deleted file made again and
 * removed again, the files it opened).
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
	int w1 = inotify_add_watch(fd, "d", IN_CREATE | IN_DELETE); /* not the cwd: the go file appears there */
	int w2 = inotify_add_watch(fd, "w.txt", IN_MODIFY);
	int w3 = inotify_add_watch(fd, "x.txt", IN_MODIFY);
	inotify_rm_watch(fd, w3);
	int w4 = inotify_add_watch(fd, "y.txt", IN_MODIFY);
	if (write_file("d/z.txt", "z", 1))
		DIE("d/z.txt");
	int z = open("d/z.txt", O_WRONLY | O_APPEND);
	int w5 = inotify_add_watch(fd, "d/z.txt", IN_MODIFY | IN_ATTRIB);
	if (z < 0 || unlink("d/z.txt"))
		DIE("deleting d/z.txt");
	if (w1 != 1 || w2 != 2 || w3 != 3 || w4 != 4 || w5 != 5)
		DIE("watch descriptors %d %d %d %d %d", w1, w2, w3, w4, w5);
	while (read(fd, evbuf, sizeof(evbuf)) > 0) /* the IN_IGNORED of wd 3, z.txt's IN_ATTRIB and IN_DELETE */
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
	CHECK(write(z, "1", 1) == 1, "write the deleted z.txt");
	ssize_t n = read(fd, evbuf, sizeof(evbuf));
	int created = 0, mod_w = 0, mod_y = 0, mod_z = 0, other = 0;
	for (ssize_t off = 0; off < n;) {
		struct inotify_event *e = (struct inotify_event *)(evbuf + off);
		if (e->wd == 1 && (e->mask & IN_CREATE) && e->len && strcmp(e->name, "new.txt") == 0)
			created++;
		else if (e->wd == 2 && (e->mask & IN_MODIFY))
			mod_w++;
		else if (e->wd == 4 && (e->mask & IN_MODIFY))
			mod_y++;
		else if (e->wd == 5 && e->mask == IN_MODIFY)
			mod_z++;
		else {
			say("detail: unexpected event wd %d mask 0x%x name %s", e->wd, e->mask, e->len ? e->name : "");
			other++;
		}
		off += (ssize_t)sizeof(*e) + e->len;
	}
	CHECK(created >= 1 && mod_w >= 1 && mod_y >= 1 && mod_z >= 1 && other == 0, "events: created %d, w %d, y %d, z %d, other %d (read %zd)",
	      created, mod_w, mod_y, mod_z, other, n);
	return finish();
}
