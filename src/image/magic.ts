// The table of CRIU image kinds: magic numbers, file names, entry schemas, payload rules.
//
// Framing (see io.ts): inventory.img starts with its own magic only; "service" files (stats-*,
// irmap-cache) start with IMG_SERVICE_MAGIC then their magic; every other protobuf image starts
// with IMG_COMMON_MAGIC then its magic. Raw images (pages-N.img, iptables dumps, tarballs, ...)
// have no header at all and are not protobuf. Magic values and file name templates are CRIU's
// (criu/include/magic.h, criu/image-desc.c); names are the ones crit prints.

import type { DescMessage } from "@bufbuild/protobuf";
import { apparmor_entrySchema } from "./gen/apparmor_pb.js";
import { autofs_entrySchema } from "./gen/autofs_pb.js";
import { binfmt_misc_entrySchema } from "./gen/binfmt-misc_pb.js";
import { bpfmap_data_entrySchema } from "./gen/bpfmap-data_pb.js";
import { bpfmap_file_entrySchema } from "./gen/bpfmap-file_pb.js";
import { cgroup_entrySchema } from "./gen/cgroup_pb.js";
import { core_entrySchema, task_kobj_ids_entrySchema } from "./gen/core_pb.js";
import { cpuinfo_entrySchema } from "./gen/cpuinfo_pb.js";
import { creds_entrySchema } from "./gen/creds_pb.js";
import { eventfd_file_entrySchema } from "./gen/eventfd_pb.js";
import { eventpoll_file_entrySchema, eventpoll_tfd_entrySchema } from "./gen/eventpoll_pb.js";
import { ext_file_entrySchema } from "./gen/ext-file_pb.js";
import { fdinfo_entrySchema, file_entrySchema } from "./gen/fdinfo_pb.js";
import { irmap_cache_entrySchema } from "./gen/fh_pb.js";
import { fifo_entrySchema } from "./gen/fifo_pb.js";
import { file_lock_entrySchema } from "./gen/file-lock_pb.js";
import { fs_entrySchema } from "./gen/fs_pb.js";
import {
  fanotify_file_entrySchema,
  fanotify_mark_entrySchema,
  inotify_file_entrySchema,
  inotify_wd_entrySchema,
} from "./gen/fsnotify_pb.js";
import { ghost_chunk_entrySchema, ghost_file_entrySchema } from "./gen/ghost-file_pb.js";
import { inventory_entrySchema } from "./gen/inventory_pb.js";
import { ipc_msg_entrySchema } from "./gen/ipc-msg_pb.js";
import { ipc_sem_entrySchema } from "./gen/ipc-sem_pb.js";
import { ipc_shm_entrySchema } from "./gen/ipc-shm_pb.js";
import { ipc_var_entrySchema } from "./gen/ipc-var_pb.js";
import { memfd_inode_entrySchema } from "./gen/memfd_pb.js";
import { cryo_mqueue_entrySchema } from "./gen/cryo-mqueue_pb.js";
import { mm_entrySchema } from "./gen/mm_pb.js";
import { mnt_entrySchema } from "./gen/mnt_pb.js";
import { net_device_entrySchema, netns_entrySchema } from "./gen/netdev_pb.js";
import { ns_file_entrySchema } from "./gen/ns_pb.js";
import { packet_sock_entrySchema } from "./gen/packet-sock_pb.js";
import { pagemap_entrySchema, pagemap_headSchema } from "./gen/pagemap_pb.js";
import { pidns_entrySchema } from "./gen/pidns_pb.js";
import { pipe_data_entrySchema } from "./gen/pipe-data_pb.js";
import { pipe_entrySchema } from "./gen/pipe_pb.js";
import { pstree_entrySchema } from "./gen/pstree_pb.js";
import { reg_file_entrySchema } from "./gen/regfile_pb.js";
import { remap_file_path_entrySchema } from "./gen/remap-file-path_pb.js";
import { rlimit_entrySchema } from "./gen/rlimit_pb.js";
import { sa_entrySchema } from "./gen/sa_pb.js";
import { seccomp_entrySchema } from "./gen/seccomp_pb.js";
import { siginfo_entrySchema } from "./gen/siginfo_pb.js";
import { signalfd_entrySchema } from "./gen/signalfd_pb.js";
import { inet_sk_entrySchema } from "./gen/sk-inet_pb.js";
import { netlink_sk_entrySchema } from "./gen/sk-netlink_pb.js";
import { sk_packet_entrySchema } from "./gen/sk-packet_pb.js";
import { unix_sk_entrySchema } from "./gen/sk-unix_pb.js";
import { stats_entrySchema } from "./gen/stats_pb.js";
import { tcp_stream_entrySchema } from "./gen/tcp-stream_pb.js";
import { timens_entrySchema } from "./gen/timens_pb.js";
import { itimer_entrySchema, posix_timer_entrySchema } from "./gen/timer_pb.js";
import { timerfd_entrySchema } from "./gen/timerfd_pb.js";
import { tty_data_entrySchema, tty_file_entrySchema, tty_info_entrySchema } from "./gen/tty_pb.js";
import { tunfile_entrySchema } from "./gen/tun_pb.js";
import { userns_entrySchema } from "./gen/userns_pb.js";
import { utsns_entrySchema } from "./gen/utsns_pb.js";
import { vma_entrySchema } from "./gen/vma_pb.js";
import {
  bpfmapDataPayload,
  ghostFilePayload,
  ipcMsgPayload,
  ipcSemPayload,
  ipcShmPayload,
  pipeDataPayload,
  skQueuePayload,
  tcpStreamPayload,
  type PayloadSize,
} from "./payload.js";

/** First u32 of every protobuf image except inventory.img. */
export const IMG_COMMON_MAGIC = 0x54564319;
/** First u32 of service files (stats-dump, stats-restore, irmap-cache). */
export const IMG_SERVICE_MAGIC = 0x55105940;
/** inventory_entry.img_version of every current image set (CRTOOLS_IMAGES_V1_1). */
export const CRTOOLS_IMAGES_V1_1 = 2;

/** How a file starts: which magic words precede the entries. */
export type ImageFraming = "common" | "service" | "inventory" | "raw";

export interface ImageKind {
  /** Name as crit prints it in "magic" ("CORE", "PAGEMAP", ...); CRIU's CR_FD name for raw kinds. */
  readonly name: string;
  /** The kind's own magic (second u32, or the only one for inventory); 0 for raw images. */
  readonly magic: number;
  readonly framing: ImageFraming;
  /** CRIU file name templates: %u/%lu decimal id, %x hex id, %s a word. First is the usual one. */
  readonly files: readonly string[];
  /** Message of every entry (of every entry after the first, when headSchema is set). */
  readonly schema?: DescMessage;
  /** Message of the first entry when it differs (PAGEMAP: pagemap_head; GHOST_FILE). */
  readonly headSchema?: DescMessage;
  /** Size of raw bytes following an entry, for kinds that have them (see payload.ts). */
  readonly payload?: PayloadSize;
}

const KINDS: readonly ImageKind[] = [
  { name: "INVENTORY", magic: 0x58313116, framing: "inventory", files: ["inventory.img"], schema: inventory_entrySchema },
  { name: "PSTREE", magic: 0x50273030, framing: "common", files: ["pstree.img"], schema: pstree_entrySchema },
  { name: "FDINFO", magic: 0x56213732, framing: "common", files: ["fdinfo-%u.img"], schema: fdinfo_entrySchema },
  // pagemap-shmem-ID.img (shared anonymous memory, memfd, SysV shm) has the same magic and layout.
  {
    name: "PAGEMAP",
    magic: 0x56084025,
    framing: "common",
    files: ["pagemap-%lu.img", "pagemap-shmem-%lu.img"],
    headSchema: pagemap_headSchema,
    schema: pagemap_entrySchema,
  },
  { name: "CORE", magic: 0x55053847, framing: "common", files: ["core-%u.img"], schema: core_entrySchema },
  { name: "IDS", magic: 0x54432030, framing: "common", files: ["ids-%u.img"], schema: task_kobj_ids_entrySchema },
  { name: "VMAS", magic: 0x54123737, framing: "common", files: ["vmas-%u.img"], schema: vma_entrySchema },
  { name: "PIPES", magic: 0x56513555, framing: "common", files: ["pipes.img"], schema: pipe_entrySchema },
  { name: "PIPES_DATA", magic: 0x56453709, framing: "common", files: ["pipes-data.img"], schema: pipe_data_entrySchema, payload: pipeDataPayload },
  { name: "FIFO", magic: 0x58364939, framing: "common", files: ["fifo.img"], schema: fifo_entrySchema },
  { name: "FIFO_DATA", magic: 0x59333054, framing: "common", files: ["fifo-data.img"], schema: pipe_data_entrySchema, payload: pipeDataPayload },
  { name: "SIGACT", magic: 0x55344201, framing: "common", files: ["sigacts-%u.img"], schema: sa_entrySchema },
  { name: "UNIXSK", magic: 0x54373943, framing: "common", files: ["unixsk.img"], schema: unix_sk_entrySchema },
  { name: "INETSK", magic: 0x56443851, framing: "common", files: ["inetsk.img"], schema: inet_sk_entrySchema },
  { name: "PACKETSK", magic: 0x60454618, framing: "common", files: ["packetsk.img"], schema: packet_sock_entrySchema },
  { name: "ITIMERS", magic: 0x57464056, framing: "common", files: ["itimers-%u.img"], schema: itimer_entrySchema },
  { name: "POSIX_TIMERS", magic: 0x52603957, framing: "common", files: ["posix-timers-%u.img"], schema: posix_timer_entrySchema },
  { name: "SK_QUEUES", magic: 0x56264026, framing: "common", files: ["sk-queues.img"], schema: sk_packet_entrySchema, payload: skQueuePayload },
  { name: "UTSNS", magic: 0x54473203, framing: "common", files: ["utsns-%u.img"], schema: utsns_entrySchema },
  { name: "CREDS", magic: 0x54023547, framing: "common", files: ["creds-%u.img"], schema: creds_entrySchema },
  { name: "IPC_VAR", magic: 0x53115007, framing: "common", files: ["ipcns-var-%u.img"], schema: ipc_var_entrySchema },
  { name: "IPCNS_SHM", magic: 0x46283044, framing: "common", files: ["ipcns-shm-%u.img"], schema: ipc_shm_entrySchema, payload: ipcShmPayload },
  { name: "IPCNS_MSG", magic: 0x55453737, framing: "common", files: ["ipcns-msg-%u.img"], schema: ipc_msg_entrySchema, payload: ipcMsgPayload },
  { name: "IPCNS_SEM", magic: 0x59573019, framing: "common", files: ["ipcns-sem-%u.img"], schema: ipc_sem_entrySchema, payload: ipcSemPayload },
  { name: "REG_FILES", magic: 0x50363636, framing: "common", files: ["reg-files.img"], schema: reg_file_entrySchema },
  { name: "EXT_FILES", magic: 0x59255641, framing: "common", files: ["ext-files.img"], schema: ext_file_entrySchema },
  { name: "FS", magic: 0x51403912, framing: "common", files: ["fs-%u.img"], schema: fs_entrySchema },
  { name: "MM", magic: 0x57492820, framing: "common", files: ["mm-%u.img"], schema: mm_entrySchema },
  { name: "REMAP_FPATH", magic: 0x59133954, framing: "common", files: ["remap-fpath.img"], schema: remap_file_path_entrySchema },
  {
    name: "GHOST_FILE",
    magic: 0x52583605,
    framing: "common",
    files: ["ghost-file-%x.img"],
    headSchema: ghost_file_entrySchema,
    schema: ghost_chunk_entrySchema,
    payload: ghostFilePayload,
  },
  { name: "TCP_STREAM", magic: 0x51465506, framing: "common", files: ["tcp-stream-%x.img"], schema: tcp_stream_entrySchema, payload: tcpStreamPayload },
  { name: "EVENTFD_FILE", magic: 0x44523722, framing: "common", files: ["eventfd.img"], schema: eventfd_file_entrySchema },
  { name: "EVENTPOLL_FILE", magic: 0x45023858, framing: "common", files: ["eventpoll.img"], schema: eventpoll_file_entrySchema },
  { name: "EVENTPOLL_TFD", magic: 0x44433746, framing: "common", files: ["eventpoll-tfd.img"], schema: eventpoll_tfd_entrySchema },
  { name: "SIGNALFD", magic: 0x57323820, framing: "common", files: ["signalfd.img"], schema: signalfd_entrySchema },
  { name: "INOTIFY_FILE", magic: 0x48424431, framing: "common", files: ["inotify.img"], schema: inotify_file_entrySchema },
  { name: "INOTIFY_WD", magic: 0x54562009, framing: "common", files: ["inotify-wd.img"], schema: inotify_wd_entrySchema },
  { name: "MNTS", magic: 0x55563928, framing: "common", files: ["mountpoints-%u.img"], schema: mnt_entrySchema },
  { name: "NETDEV", magic: 0x57373951, framing: "common", files: ["netdev-%u.img"], schema: net_device_entrySchema },
  { name: "NETNS", magic: 0x55933752, framing: "common", files: ["netns-%u.img"], schema: netns_entrySchema },
  { name: "TTY_FILES", magic: 0x59433025, framing: "common", files: ["tty.img"], schema: tty_file_entrySchema },
  { name: "TTY_INFO", magic: 0x59453036, framing: "common", files: ["tty-info.img"], schema: tty_info_entrySchema },
  { name: "TTY_DATA", magic: 0x59413026, framing: "common", files: ["tty-data.img"], schema: tty_data_entrySchema },
  { name: "FILE_LOCKS", magic: 0x54323616, framing: "common", files: ["filelocks.img"], schema: file_lock_entrySchema },
  { name: "RLIMIT", magic: 0x57113925, framing: "common", files: ["rlimit-%u.img"], schema: rlimit_entrySchema },
  { name: "FANOTIFY_FILE", magic: 0x55096122, framing: "common", files: ["fanotify.img"], schema: fanotify_file_entrySchema },
  { name: "FANOTIFY_MARK", magic: 0x56506035, framing: "common", files: ["fanotify-mark.img"], schema: fanotify_mark_entrySchema },
  // Old per-task signal queues (shared and private); newer CRIU keeps them in the core image.
  { name: "SIGNAL", magic: 0x59255647, framing: "common", files: ["signal-s-%u.img", "signal-p-%u.img"], schema: siginfo_entrySchema },
  { name: "NETLINK_SK", magic: 0x58005614, framing: "common", files: ["netlinksk.img"], schema: netlink_sk_entrySchema },
  { name: "NS_FILES", magic: 0x61394011, framing: "common", files: ["ns-files.img"], schema: ns_file_entrySchema },
  { name: "TUNFILE", magic: 0x57143751, framing: "common", files: ["tunfile.img"], schema: tunfile_entrySchema },
  { name: "CGROUP", magic: 0x59383330, framing: "common", files: ["cgroup.img"], schema: cgroup_entrySchema },
  { name: "TIMERFD", magic: 0x50493712, framing: "common", files: ["timerfd.img"], schema: timerfd_entrySchema },
  { name: "CPUINFO", magic: 0x61404013, framing: "common", files: ["cpuinfo.img"], schema: cpuinfo_entrySchema },
  { name: "USERNS", magic: 0x55474906, framing: "common", files: ["userns-%u.img"], schema: userns_entrySchema },
  { name: "SECCOMP", magic: 0x64413049, framing: "common", files: ["seccomp.img"], schema: seccomp_entrySchema },
  { name: "BINFMT_MISC", magic: 0x67343323, framing: "common", files: ["binfmt-misc.img", "binfmt-misc-%u.img"], schema: binfmt_misc_entrySchema },
  { name: "AUTOFS", magic: 0x49353943, framing: "common", files: ["autofs-%u.img"], schema: autofs_entrySchema },
  { name: "FILES", magic: 0x56303138, framing: "common", files: ["files.img"], schema: file_entrySchema },
  { name: "MEMFD_INODE", magic: 0x48453499, framing: "common", files: ["memfd.img"], schema: memfd_inode_entrySchema },
  { name: "TIMENS", magic: 0x43114433, framing: "common", files: ["timens-%u.img"], schema: timens_entrySchema },
  { name: "PIDNS", magic: 0x61157326, framing: "common", files: ["pidns-%u.img"], schema: pidns_entrySchema },
  { name: "BPFMAP_FILE", magic: 0x57506142, framing: "common", files: ["bpfmap-file.img"], schema: bpfmap_file_entrySchema },
  { name: "BPFMAP_DATA", magic: 0x64324033, framing: "common", files: ["bpfmap-data.img"], schema: bpfmap_data_entrySchema, payload: bpfmapDataPayload },
  { name: "APPARMOR", magic: 0x59423047, framing: "common", files: ["apparmor.img"], schema: apparmor_entrySchema },
  // cryo's own (CRIU has no image of POSIX message queues): a magic of cryo's, "CRY1".
  { name: "CRYO_MQUEUE", magic: 0x43525931, framing: "common", files: ["cryo-mqueue.img"], schema: cryo_mqueue_entrySchema },
  // Service files: not part of the checkpoint proper, and named without ".img".
  { name: "STATS", magic: 0x57093306, framing: "service", files: ["stats-%s"], schema: stats_entrySchema },
  { name: "IRMAP_CACHE", magic: 0x57004059, framing: "service", files: ["irmap-cache"], schema: irmap_cache_entrySchema },
  // Raw images: no magic, not protobuf. pages-N.img is referenced by pagemap_head.pages_id.
  { name: "PAGES", magic: 0, framing: "raw", files: ["pages-%u.img"] },
  { name: "IFADDR", magic: 0, framing: "raw", files: ["ifaddr-%u.img"] },
  { name: "ROUTE", magic: 0, framing: "raw", files: ["route-%u.img"] },
  { name: "ROUTE6", magic: 0, framing: "raw", files: ["route6-%u.img"] },
  { name: "RULE", magic: 0, framing: "raw", files: ["rule-%u.img"] },
  { name: "IPTABLES", magic: 0, framing: "raw", files: ["iptables-%u.img"] },
  { name: "IP6TABLES", magic: 0, framing: "raw", files: ["ip6tables-%u.img"] },
  { name: "NFTABLES", magic: 0, framing: "raw", files: ["nftables-%u.img"] },
  { name: "NETNF_CT", magic: 0, framing: "raw", files: ["netns-ct-%u.img"] },
  { name: "NETNF_EXP", magic: 0, framing: "raw", files: ["netns-exp-%u.img"] },
  { name: "TMPFS_IMG", magic: 0, framing: "raw", files: ["tmpfs-%u.tar.gz.img"] },
  { name: "TMPFS_DEV", magic: 0, framing: "raw", files: ["tmpfs-dev-%u.tar.gz.img"] },
];

const byName = new Map(KINDS.map((k) => [k.name, k]));
const byMagic = new Map(KINDS.filter((k) => k.framing !== "raw").map((k) => [k.magic, k]));

// File name templates compiled to anchored regexps, most specific (longest literal) first so
// that "pagemap-shmem-5.img" is not taken for "pagemap-%lu.img" and "tmpfs-dev-1..." not for
// "tmpfs-%u...".
const FILE_PATTERNS: readonly { re: RegExp; kind: ImageKind }[] = KINDS.flatMap((kind) =>
  kind.files.map((t) => ({ t, kind })),
)
  .sort((a, b) => b.t.replace(/%\w+/g, "").length - a.t.replace(/%\w+/g, "").length)
  .map(({ t, kind }) => ({ re: templateRegExp(t), kind }));

function templateRegExp(template: string): RegExp {
  const src = template
    .split(/(%l?[udxs])/)
    .map((part) => {
      if (/^%l?[ud]$/.test(part)) return "\\d+";
      if (part === "%x") return "[0-9a-f]+";
      if (part === "%s") return "[^/]+";
      return part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    })
    .join("");
  return new RegExp(`^${src}$`);
}

/** All known kinds, in CRIU's magic.h order (raw kinds last). */
export function allKinds(): readonly ImageKind[] {
  return KINDS;
}

/** Kind by crit name ("CORE"), or undefined. */
export function kindByName(name: string): ImageKind | undefined {
  return byName.get(name);
}

/** Kind by its own magic (not the common/service one), or undefined. Raw kinds have none. */
export function kindByMagic(magic: number): ImageKind | undefined {
  return byMagic.get(magic >>> 0);
}

/** Kind of a file from its name ("core-123.img" -> CORE); a directory part is ignored. */
export function kindForFileName(fileName: string): ImageKind | undefined {
  const base = fileName.slice(fileName.lastIndexOf("/") + 1);
  return FILE_PATTERNS.find((p) => p.re.test(base))?.kind;
}

/**
 * File name for an image of a kind: imageFileName("CORE", 123) -> "core-123.img",
 * imageFileName("PAGEMAP", 5, 1) -> "pagemap-shmem-5.img". `variant` picks the template.
 */
export function imageFileName(kindName: string, id?: number | bigint | string, variant = 0): string {
  const kind = byName.get(kindName);
  const template = kind?.files[variant];
  if (template === undefined) throw new Error(`no file name template ${variant} for image kind ${kindName}`);
  return template.replace(/%l?[udxs]/, (spec) => {
    if (id === undefined) throw new Error(`image kind ${kindName} needs an id for ${template}`);
    if (spec === "%x") return (typeof id === "string" ? id : id.toString(16));
    return String(id);
  });
}

/** Hex form used in messages: 0x54564319. */
export function hexMagic(magic: number): string {
  return `0x${(magic >>> 0).toString(16).padStart(8, "0")}`;
}
