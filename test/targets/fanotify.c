/*
 * fanotify: a notification group (O_NONBLOCK) with inode marks on f.txt (FAN_MODIFY) and
 * g.txt (FAN_CLOSE_WRITE). After go it checks nothing is queued, writes to f.txt and closes
 * g.txt after writing, and expects both events, each with an fd on the right file.
 */
#include "common.h"

#include <sys/fanotify.h>

static char evbuf[8192] __attribute__((aligned(8)));

int main(void)
{
	char cwd[200], f[256], g[256];
	if (!getcwd(cwd, sizeof(cwd)) || write_file("f.txt", "f", 1) || write_file("g.txt", "g", 1))
		DIE("files");
	snprintf(f, sizeof(f), "%s/f.txt", cwd);
	snprintf(g, sizeof(g), "%s/g.txt", cwd);
	int fan = fanotify_init(FAN_CLASS_NOTIF | FAN_NONBLOCK, O_RDONLY);
	if (fan < 0 || fanotify_mark(fan, FAN_MARK_ADD, FAN_MODIFY, AT_FDCWD, f) ||
	    fanotify_mark(fan, FAN_MARK_ADD, FAN_CLOSE_WRITE, AT_FDCWD, g))
		DIE("fanotify");
	ready();
	wait_go();
	CHECK(read(fan, evbuf, sizeof(evbuf)) < 0 && errno == EAGAIN, "events queued before go, or O_NONBLOCK lost");
	int fd = open("f.txt", O_WRONLY | O_APPEND);
	CHECK(write(fd, "1", 1) == 1, "write f.txt");
	close(fd);
	fd = open("g.txt", O_WRONLY | O_APPEND);
	CHECK(write(fd, "1", 1) == 1, "write g.txt");
	close(fd);
	ssize_t n = read(fan, evbuf, sizeof(evbuf));
	int mod = 0, closed = 0;
	for (struct fanotify_event_metadata *m = (void *)evbuf; FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n)) {
		char path[64], link[300] = "";
		snprintf(path, sizeof(path), "/proc/self/fd/%d", m->fd);
		if (readlink(path, link, sizeof(link) - 1) < 0)
			link[0] = 0;
		if ((m->mask & FAN_MODIFY) && strcmp(link, f) == 0)
			mod++;
		if ((m->mask & FAN_CLOSE_WRITE) && strcmp(link, g) == 0)
			closed++;
		close(m->fd);
	}
	CHECK(mod >= 1 && closed == 1, "events: modify %d, close_write %d (read %zd)", mod, closed, n);
	return finish();
}
