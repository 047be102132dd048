/*
 * creds: a process whose credentials are set from argv, checked after restore.
 *
 * Arguments (all optional; without any the process keeps the credentials it was started with,
 * e.g. by setpriv):
 *   uid=R,E,S,FS  gid=R,E,S,FS  groups=G1,G2,...|none  secbits=N
 *   bnd=HEX prm=HEX eff=HEX inh=HEX amb=HEX   (64-bit capability masks)
 *   nnp=1         (PR_SET_NO_NEW_PRIVS)
 * Started as root with every capability, it sets them in an order that works (the same problem
 * the restorer has), then checks /proc/self/status and prctl show exactly what was asked (a
 * case that did not take effect is a setup error, not a pass). It prints READY; after go it
 * compares the same fields with the values it had at READY. The cwd must be searchable by the
 * target's real uid (the harness makes it so) to see the go file.
 */
#include "common.h"

#include <grp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <linux/capability.h>

#define SECBIT_KEEP_CAPS_ (1 << 4)
#define SECBIT_NO_SETUID_FIXUP_ (1 << 2)

struct want {
	int ids, gids, groups, secbits, bnd, prm, eff, inh, amb, nnp;
	unsigned uid[4], gid[4];
	gid_t groupv[64];
	int ngroups;
	unsigned sb;
	unsigned long long capbnd, capprm, capeff, capinh, capamb;
};

static void parse_ids(const char *s, unsigned out[4])
{
	if (sscanf(s, "%u,%u,%u,%u", &out[0], &out[1], &out[2], &out[3]) != 4)
		DIE("bad id list %s", s);
}

static void caps_set(unsigned long long eff, unsigned long long prm, unsigned long long inh)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2] = {
		{ (unsigned)eff, (unsigned)prm, (unsigned)inh },
		{ (unsigned)(eff >> 32), (unsigned)(prm >> 32), (unsigned)(inh >> 32) },
	};
	if (syscall(SYS_capset, &h, d) != 0)
		DIE("capset eff=%llx prm=%llx inh=%llx", eff, prm, inh);
}

static unsigned long long caps_permitted(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	if (syscall(SYS_capget, &h, d) != 0)
		DIE("capget");
	return d[0].permitted | ((unsigned long long)d[1].permitted << 32);
}

static void apply(const struct want *w)
{
	if (prctl(PR_SET_SECUREBITS, SECBIT_KEEP_CAPS_ | SECBIT_NO_SETUID_FIXUP_, 0, 0, 0) != 0)
		DIE("temporary securebits");
	if (w->groups && setgroups(w->ngroups, w->groupv) != 0)
		DIE("setgroups");
	if (w->gids) {
		if (setresgid(w->gid[0], w->gid[1], w->gid[2]) != 0)
			DIE("setresgid");
		setfsgid(w->gid[3]);
	}
	unsigned long long prm = caps_permitted();
	if (w->inh)
		caps_set(prm, prm, w->capinh);
	if (w->bnd)
		for (int c = 0; c < 64; c++)
			if (!(w->capbnd & (1ULL << c)) && prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1 &&
			    prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0)
				DIE("bounding drop %d", c);
	if (w->amb)
		for (int c = 0; c < 64; c++)
			if ((w->capamb & (1ULL << c)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) != 0)
				DIE("ambient raise %d", c);
	if (w->ids) {
		if (setresuid(w->uid[0], w->uid[1], w->uid[2]) != 0)
			DIE("setresuid");
		setfsuid(w->uid[3]);
	}
	if (prctl(PR_SET_SECUREBITS, w->secbits ? w->sb : 0, 0, 0, 0) != 0)
		DIE("securebits %u", w->sb);
	if (w->nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		DIE("no_new_privs");
	if (w->prm || w->eff || w->inh)
		caps_set(w->eff ? w->capeff : 0, w->prm ? w->capprm : 0, w->inh ? w->capinh : 0);
}

/* The credential lines of /proc/self/status, plus what only prctl tells. */
static void snapshot(char *out, size_t size)
{
	static char status[8192];
	if (read_file("/proc/self/status", status, sizeof status) < 0)
		DIE("read status");
	size_t n = 0;
	static const char *keys[] = { "Uid:", "Gid:", "Groups:", "CapInh:", "CapPrm:", "CapEff:",
				      "CapBnd:", "CapAmb:", "NoNewPrivs:", NULL };
	for (char *line = status; line && *line;) {
		char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		for (int k = 0; keys[k]; k++)
			if (strncmp(line, keys[k], strlen(keys[k])) == 0 && n + len + 2 < size) {
				memcpy(out + n, line, len);
				n += len;
				out[n++] = '|';
			}
		line = nl ? nl + 1 : NULL;
	}
	n += snprintf(out + n, size - n, "secbits %d keepcaps %d nnp %d", prctl(PR_GET_SECUREBITS, 0, 0, 0, 0),
		      prctl(PR_GET_KEEPCAPS, 0, 0, 0, 0), prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
}

static unsigned long long status_hex(const char *snap, const char *key)
{
	const char *p = strstr(snap, key);
	return p ? strtoull(p + strlen(key), NULL, 16) : ~0ULL;
}

/* What was asked must be what the kernel shows, or the case tests nothing. */
static void check_applied(const struct want *w, const char *snap)
{
	char buf[128];
	if (w->ids) {
		snprintf(buf, sizeof buf, "Uid:\t%u\t%u\t%u\t%u|", w->uid[0], w->uid[1], w->uid[2], w->uid[3]);
		if (!strstr(snap, buf))
			DIE("uids not applied: %s", snap);
	}
	if (w->gids) {
		snprintf(buf, sizeof buf, "Gid:\t%u\t%u\t%u\t%u|", w->gid[0], w->gid[1], w->gid[2], w->gid[3]);
		if (!strstr(snap, buf))
			DIE("gids not applied: %s", snap);
	}
	if ((w->bnd && status_hex(snap, "CapBnd:\t") != w->capbnd) ||
	    (w->prm && status_hex(snap, "CapPrm:\t") != w->capprm) ||
	    (w->eff && status_hex(snap, "CapEff:\t") != w->capeff) ||
	    (w->inh && status_hex(snap, "CapInh:\t") != w->capinh) ||
	    (w->amb && status_hex(snap, "CapAmb:\t") != w->capamb))
		DIE("capabilities not applied: %s", snap);
	if (w->secbits && prctl(PR_GET_SECUREBITS, 0, 0, 0, 0) != (int)w->sb)
		DIE("securebits not applied: %s", snap);
	if (w->nnp && prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		DIE("no_new_privs not applied");
}

int main(int argc, char **argv)
{
	static struct want w;
	static char before[4096], after[4096];
	struct fdset fds;
	for (int i = 1; i < argc; i++) {
		char *a = argv[i], *v = strchr(a, '=');
		if (!v)
			DIE("bad argument %s", a);
		v++;
		if (!strncmp(a, "uid=", 4))
			w.ids = 1, parse_ids(v, w.uid);
		else if (!strncmp(a, "gid=", 4))
			w.gids = 1, parse_ids(v, w.gid);
		else if (!strncmp(a, "groups=", 7)) {
			w.groups = 1;
			for (char *p = v; strcmp(v, "none") && *p && w.ngroups < 64; p = strchr(p, ',') ? strchr(p, ',') + 1 : p + strlen(p))
				w.groupv[w.ngroups++] = (gid_t)strtoul(p, NULL, 10);
		} else if (!strncmp(a, "secbits=", 8))
			w.secbits = 1, w.sb = (unsigned)strtoul(v, NULL, 0);
		else if (!strncmp(a, "bnd=", 4))
			w.bnd = 1, w.capbnd = strtoull(v, NULL, 16);
		else if (!strncmp(a, "prm=", 4))
			w.prm = 1, w.capprm = strtoull(v, NULL, 16);
		else if (!strncmp(a, "eff=", 4))
			w.eff = 1, w.capeff = strtoull(v, NULL, 16);
		else if (!strncmp(a, "inh=", 4))
			w.inh = 1, w.capinh = strtoull(v, NULL, 16);
		else if (!strncmp(a, "amb=", 4))
			w.amb = 1, w.capamb = strtoull(v, NULL, 16);
		else if (!strncmp(a, "nnp=", 4))
			w.nnp = atoi(v);
		else
			DIE("unknown argument %s", a);
	}
	if (argc > 1) {
		apply(&w);
	}
	if (fdset_take(&fds) < 0)
		DIE("fdset");
	snapshot(before, sizeof before);
	check_applied(&w, before);
	say("detail: %s", before);
	ready();
	wait_go();
	snapshot(after, sizeof after);
	CHECK(strcmp(before, after) == 0, "credentials changed: before [%s] after [%s]", before, after);
	fdset_compare(&fds);
	return finish();
}
