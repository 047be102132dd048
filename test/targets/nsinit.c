/*
 * nsinit: the init (PID 1) of its own PID, UTS and IPC namespaces, started by
 * `unshare --fork --pid --uts --ipc`. It leads its own session, sets a hostname and a domain
 * name, creates two semaphore sets (one IPC_PRIVATE, one keyed) with values, a message queue
 * holding messages of several types, a keyed shm segment it attaches and fills, and a private
 * one it attaches, fills and removes (IPC_RMID: it must come back still removed), then forks
 * two children. READY prints the ids. After go every process checks its PID inside (init 1,
 * children as forked, parent 1); the init checks the hostname, domain name, the semaphore
 * values, the messages in order with their types, the segment's contents, and that every key
 * still names the object of the same id. The children look at the semaphores and the segment
 * too (same namespace), then exit 0. The init also holds a POSIX timer that signals one thread
 * (SIGEV_THREAD_ID, its own TID: 1 inside, another number outside), armed for an hour.
 */
#include "common.h"

#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <signal.h>
#include <time.h>
#include <sys/syscall.h>

#define SEM_KEY 0x4e530001
#define MSG_KEY 0x4e530002
#define SHM_KEY 0x4e530003
#define SHM_SIZE (3 * 4096 + 100)
#define HOST "cryo-ns-host"
#define DOMAIN "cryo-ns-domain"

struct msgtext {
	long mtype;
	char text[64];
};

static const struct {
	long type;
	const char *text;
} msgs[] = { { 1, "one" }, { 5, "five-a" }, { 2, "two-two" }, { 5, "five-b" }, { 9, "" } };
#define NMSGS (sizeof(msgs) / sizeof(msgs[0]))

static const unsigned short semvals[3] = { 7, 0, 42 };

static void check_shared(int semid, int shmid, const char *shm, const char *who)
{
	unsigned short now[3] = { 0 };
	CHECK(semctl(semid, 0, GETALL, now) == 0 && memcmp(now, semvals, sizeof now) == 0, "%s: semaphore values %u %u %u (%s)", who,
	      now[0], now[1], now[2], strerror(errno));
	CHECK(semget(SEM_KEY, 0, 0) == semid, "%s: semaphore key names id %d, not %d", who, semget(SEM_KEY, 0, 0), semid);
	CHECK(shmget(SHM_KEY, 0, 0) == shmid, "%s: shm key names id %d, not %d", who, shmget(SHM_KEY, 0, 0), shmid);
	CHECK(pattern_check(shm, SHM_SIZE, 77) < 0, "%s: shm contents differ at %ld", who, pattern_check(shm, SHM_SIZE, 77));
}

int main(void)
{
	if (getpid() != 1)
		DIE("not PID 1 in its namespace: %d", getpid());
	if (setsid() < 0)
		DIE("setsid");
	if (sethostname(HOST, strlen(HOST)) < 0 || setdomainname(DOMAIN, strlen(DOMAIN)) < 0)
		DIE("sethostname");
	int semp = semget(IPC_PRIVATE, 2, 0600);
	int semid = semget(SEM_KEY, 3, IPC_CREAT | IPC_EXCL | 0640);
	int msqid = msgget(MSG_KEY, IPC_CREAT | IPC_EXCL | 0620);
	int shmid = shmget(SHM_KEY, SHM_SIZE, IPC_CREAT | IPC_EXCL | 0600);
	if (semp < 0 || semid < 0 || msqid < 0 || shmid < 0)
		DIE("ipc get");
	unsigned short pv[2] = { 3, 4 };
	if (semctl(semid, 0, SETALL, semvals) < 0 || semctl(semp, 0, SETALL, pv) < 0)
		DIE("semctl SETALL");
	for (size_t i = 0; i < NMSGS; i++) {
		struct msgtext m = { .mtype = msgs[i].type };
		strcpy(m.text, msgs[i].text);
		if (msgsnd(msqid, &m, strlen(m.text), IPC_NOWAIT) < 0)
			DIE("msgsnd");
	}
	char *shm = shmat(shmid, NULL, 0);
	if (shm == (void *)-1)
		DIE("shmat");
	pattern_fill(shm, SHM_SIZE, 77);
	int gone = shmget(IPC_PRIVATE, 8192, 0600);
	char *gshm = gone < 0 ? (void *)-1 : shmat(gone, NULL, 0);
	if (gshm == (void *)-1 || shmctl(gone, IPC_RMID, NULL) < 0)
		DIE("removed segment");
	pattern_fill(gshm, 8192, 78);

	pid_t kids[2];
	for (int k = 0; k < 2; k++) {
		kids[k] = fork();
		if (kids[k] < 0)
			DIE("fork");
		if (kids[k] == 0) {
			pid_t me = getpid();
			wait_go();
			CHECK(getpid() == me, "child: getpid() %d, was %d", getpid(), me);
			CHECK(getppid() == 1, "child %d: getppid() %d, not 1", me, getppid());
			check_shared(semid, shmid, shm, "child");
			/* Only the init says PASS; a child's failure is its own line and its exit status. */
			if (fail_count_)
				say("FAIL: child %d: %s", me, fail_buf_);
			_exit(fail_count_ ? 1 : 0);
		}
	}
	timer_t tid_timer;
	struct sigevent sev = { .sigev_notify = SIGEV_THREAD_ID, .sigev_signo = SIGRTMIN + 2 };
	sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
	struct itimerspec hour = { .it_value = { .tv_sec = 3600 }, .it_interval = { .tv_sec = 3600 } };
	if (timer_create(CLOCK_MONOTONIC, &sev, &tid_timer) != 0 || timer_settime(tid_timer, 0, &hour, NULL) != 0)
		DIE("timer_create (SIGEV_THREAD_ID)");
	static struct fdset fds;
	if (fdset_take(&fds) < 0)
		DIE("fdset_take");
	say("ids sem %d %d msg %d shm %d %d kids %d %d", semp, semid, msqid, shmid, gone, kids[0], kids[1]);
	ready();
	wait_go();

	CHECK(getpid() == 1, "init: getpid() %d", getpid());
	struct itimerspec left;
	CHECK(timer_gettime(tid_timer, &left) == 0 && left.it_interval.tv_sec == 3600 && left.it_value.tv_sec > 3000,
	      "thread-targeted timer: interval %ld s, %ld s left", (long)left.it_interval.tv_sec, (long)left.it_value.tv_sec);
	CHECK(getsid(0) == 1 && getpgid(0) == 1, "init: session %d group %d", getsid(0), getpgid(0));
	char name[128] = { 0 };
	CHECK(gethostname(name, sizeof name) == 0 && strcmp(name, HOST) == 0, "hostname '%s'", name);
	memset(name, 0, sizeof name);
	CHECK(getdomainname(name, sizeof name) == 0 && strcmp(name, DOMAIN) == 0, "domain name '%s'", name);
	check_shared(semid, shmid, shm, "init");
	struct shmid_ds gds;
	CHECK(shmctl(gone, IPC_STAT, &gds) == 0 && (gds.shm_perm.mode & SHM_DEST) && gds.shm_nattch >= 1, "removed segment %d: mode 0%o, %lu attached (%s)",
	      gone, gds.shm_perm.mode, (unsigned long)gds.shm_nattch, strerror(errno));
	CHECK(pattern_check(gshm, 8192, 78) < 0, "removed segment: contents differ");
	unsigned short pnow[2] = { 0 };
	CHECK(semctl(semp, 0, GETALL, pnow) == 0 && pnow[0] == 3 && pnow[1] == 4, "private set %d: %u %u", semp, pnow[0], pnow[1]);
	struct semid_ds sds;
	union {
		struct semid_ds *buf;
	} arg = { &sds };
	CHECK(semctl(semid, 0, IPC_STAT, arg) == 0 && (sds.sem_perm.mode & 0777) == 0640 && sds.sem_nsems == 3, "keyed set mode 0%o nsems %lu",
	      sds.sem_perm.mode, (unsigned long)sds.sem_nsems);
	CHECK(msgget(MSG_KEY, 0) == msqid, "message key names id %d, not %d", msgget(MSG_KEY, 0), msqid);
	struct msqid_ds mds;
	CHECK(msgctl(msqid, IPC_STAT, &mds) == 0 && mds.msg_qnum == NMSGS && (mds.msg_perm.mode & 0777) == 0620, "queue: %lu messages, mode 0%o",
	      (unsigned long)mds.msg_qnum, mds.msg_perm.mode);
	for (size_t i = 0; i < NMSGS; i++) {
		struct msgtext m = { 0 };
		ssize_t n = msgrcv(msqid, &m, sizeof m.text, 0, IPC_NOWAIT);
		CHECK(n == (ssize_t)strlen(msgs[i].text) && m.mtype == msgs[i].type && memcmp(m.text, msgs[i].text, n) == 0,
		      "message %zu: type %ld, %zd bytes '%.*s'", i, m.mtype, n, (int)(n > 0 ? n : 0), m.text);
	}
	for (int k = 0; k < 2; k++) {
		int st = 0;
		CHECK(waitpid(kids[k], &st, 0) == kids[k] && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d: status 0x%x", kids[k], st);
	}
	fdset_compare(&fds);
	return finish();
}
