// Socket options beyond the ones CRIU's sk_opts_entry, inet_sk_entry and tcp_stream_entry name:
// kernel ABI numbers (include/uapi/asm-generic/socket.h, linux/in.h, linux/in6.h, linux/tcp.h,
// linux/udp.h), for the options a program sets and a restore must put back.
import { SOL, TCP_STATE } from './socket.js';

const SOL_UDP = 17;

/**
 * One option: its level and number, the name messages use, and when it may be recorded: `any`
 * socket, or only one `unconnected` at the dump (what the kernel works out by itself on a
 * connected socket, or refuses to take once connected).
 */
export interface SockoptName {
  level: number;
  name: number;
  label: string;
  when: 'any' | 'unconnected';
  /** the kernel returns a NUL-padded string; setsockopt takes it up to the NUL */
  text?: boolean;
  /** multicast: a stream socket refuses it (EINVAL), and an accepted one reads the SYN's TTL */
  notStream?: boolean;
  /** recorded only in these TCP states (tcpi_state): where getsockopt shows what was set */
  tcpStates?: readonly number[];
}

const any = (level: number, name: number, label: string): SockoptName => ({ level, name, label, when: 'any' });
const multicast = (level: number, name: number, label: string): SockoptName => ({ level, name, label, when: 'any', notStream: true });
const unconnected = (level: number, name: number, label: string): SockoptName => ({ level, name, label, when: 'unconnected' });

export const SOCKET_LEVEL_OPTS: readonly SockoptName[] = [
  any(SOL.SOCKET, 29, 'SO_TIMESTAMP_OLD'),
  any(SOL.SOCKET, 35, 'SO_TIMESTAMPNS_OLD'),
  any(SOL.SOCKET, 37, 'SO_TIMESTAMPING_OLD'),
  any(SOL.SOCKET, 63, 'SO_TIMESTAMP_NEW'),
  any(SOL.SOCKET, 64, 'SO_TIMESTAMPNS_NEW'),
  any(SOL.SOCKET, 40, 'SO_RXQ_OVFL'),
  any(SOL.SOCKET, 41, 'SO_WIFI_STATUS'),
  any(SOL.SOCKET, 42, 'SO_PEEK_OFF'),
  any(SOL.SOCKET, 45, 'SO_SELECT_ERR_QUEUE'),
  any(SOL.SOCKET, 46, 'SO_BUSY_POLL'),
  any(SOL.SOCKET, 47, 'SO_MAX_PACING_RATE'),
  any(SOL.SOCKET, 60, 'SO_ZEROCOPY'),
  any(SOL.SOCKET, 61, 'SO_TXTIME'),
  any(SOL.SOCKET, 69, 'SO_PREFER_BUSY_POLL'),
  any(SOL.SOCKET, 70, 'SO_BUSY_POLL_BUDGET'),
  any(SOL.SOCKET, 75, 'SO_RCVMARK'),
  any(SOL.SOCKET, 76, 'SO_PASSPIDFD'),
];

export const IP_LEVEL_OPTS: readonly SockoptName[] = [
  any(SOL.IP, 1, 'IP_TOS'),
  any(SOL.IP, 2, 'IP_TTL'),
  any(SOL.IP, 3, 'IP_HDRINCL'),
  any(SOL.IP, 6, 'IP_RECVOPTS'),
  any(SOL.IP, 7, 'IP_RETOPTS'),
  any(SOL.IP, 8, 'IP_PKTINFO'),
  any(SOL.IP, 10, 'IP_MTU_DISCOVER'),
  any(SOL.IP, 11, 'IP_RECVERR'),
  any(SOL.IP, 12, 'IP_RECVTTL'),
  any(SOL.IP, 13, 'IP_RECVTOS'),
  any(SOL.IP, 15, 'IP_FREEBIND'),
  any(SOL.IP, 18, 'IP_PASSSEC'),
  any(SOL.IP, 19, 'IP_TRANSPARENT'),
  any(SOL.IP, 20, 'IP_RECVORIGDSTADDR'),
  any(SOL.IP, 21, 'IP_MINTTL'),
  any(SOL.IP, 22, 'IP_NODEFRAG'),
  any(SOL.IP, 23, 'IP_CHECKSUM'),
  any(SOL.IP, 24, 'IP_BIND_ADDRESS_NO_PORT'),
  any(SOL.IP, 25, 'IP_RECVFRAGSIZE'),
  any(SOL.IP, 26, 'IP_RECVERR_RFC4884'),
  multicast(SOL.IP, 32, 'IP_MULTICAST_IF'),
  multicast(SOL.IP, 33, 'IP_MULTICAST_TTL'),
  multicast(SOL.IP, 34, 'IP_MULTICAST_LOOP'),
  multicast(SOL.IP, 49, 'IP_MULTICAST_ALL'),
  any(SOL.IP, 51, 'IP_LOCAL_PORT_RANGE'),
];

export const IPV6_LEVEL_OPTS: readonly SockoptName[] = [
  any(SOL.IPV6, 16, 'IPV6_UNICAST_HOPS'),
  multicast(SOL.IPV6, 17, 'IPV6_MULTICAST_IF'),
  multicast(SOL.IPV6, 18, 'IPV6_MULTICAST_HOPS'),
  multicast(SOL.IPV6, 19, 'IPV6_MULTICAST_LOOP'),
  any(SOL.IPV6, 23, 'IPV6_MTU_DISCOVER'),
  any(SOL.IPV6, 25, 'IPV6_RECVERR'),
  multicast(SOL.IPV6, 29, 'IPV6_MULTICAST_ALL'),
  any(SOL.IPV6, 49, 'IPV6_RECVPKTINFO'),
  any(SOL.IPV6, 51, 'IPV6_RECVHOPLIMIT'),
  any(SOL.IPV6, 53, 'IPV6_RECVHOPOPTS'),
  any(SOL.IPV6, 56, 'IPV6_RECVRTHDR'),
  any(SOL.IPV6, 58, 'IPV6_RECVDSTOPTS'),
  any(SOL.IPV6, 60, 'IPV6_RECVPATHMTU'),
  any(SOL.IPV6, 62, 'IPV6_DONTFRAG'),
  any(SOL.IPV6, 66, 'IPV6_RECVTCLASS'),
  any(SOL.IPV6, 67, 'IPV6_TCLASS'),
  any(SOL.IPV6, 70, 'IPV6_AUTOFLOWLABEL'),
  any(SOL.IPV6, 72, 'IPV6_ADDR_PREFERENCES'),
  any(SOL.IPV6, 73, 'IPV6_MINHOPCOUNT'),
  any(SOL.IPV6, 74, 'IPV6_RECVORIGDSTADDR'),
  any(SOL.IPV6, 75, 'IPV6_TRANSPARENT'),
  any(SOL.IPV6, 76, 'IPV6_UNICAST_IF'),
  any(SOL.IPV6, 77, 'IPV6_RECVFRAGSIZE'),
  any(SOL.IPV6, 78, 'IPV6_FREEBIND'),
];

export const TCP_LEVEL_OPTS: readonly SockoptName[] = [
  // The MSS clamp (user_mss): getsockopt shows it only on a closed or listening socket; any
  // other (a connect in progress, a connection, one closing) shows the MSS the kernel worked out
  { ...unconnected(SOL.TCP, 2, 'TCP_MAXSEG'), tcpStates: [TCP_STATE.CLOSE, TCP_STATE.LISTEN] },
  any(SOL.TCP, 7, 'TCP_SYNCNT'),
  any(SOL.TCP, 8, 'TCP_LINGER2'),
  unconnected(SOL.TCP, 9, 'TCP_DEFER_ACCEPT'),
  unconnected(SOL.TCP, 10, 'TCP_WINDOW_CLAMP'),
  { ...any(SOL.TCP, 13, 'TCP_CONGESTION'), text: true },
  any(SOL.TCP, 16, 'TCP_THIN_LINEAR_TIMEOUTS'),
  any(SOL.TCP, 18, 'TCP_USER_TIMEOUT'),
  unconnected(SOL.TCP, 23, 'TCP_FASTOPEN'),
  any(SOL.TCP, 25, 'TCP_NOTSENT_LOWAT'),
  unconnected(SOL.TCP, 27, 'TCP_SAVE_SYN'),
  unconnected(SOL.TCP, 30, 'TCP_FASTOPEN_CONNECT'),
  unconnected(SOL.TCP, 34, 'TCP_FASTOPEN_NO_COOKIE'),
  any(SOL.TCP, 36, 'TCP_INQ'),
  any(SOL.TCP, 37, 'TCP_TX_DELAY'),
];

export const UDP_LEVEL_OPTS: readonly SockoptName[] = [
  any(SOL_UDP, 1, 'UDP_CORK'),
  any(SOL_UDP, 101, 'UDP_NO_CHECK6_TX'),
  any(SOL_UDP, 102, 'UDP_NO_CHECK6_RX'),
  any(SOL_UDP, 103, 'UDP_SEGMENT'),
  any(SOL_UDP, 104, 'UDP_GRO'),
];
