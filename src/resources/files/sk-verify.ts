// What a restored socket must show of its SOL_SOCKET options, shared by every socket kind: the
// image side (expectSkOpts, from sk_opts_entry) and the /proc side (resources/observe/read-fds.ts,
// getsockopt on a copy of the task's socket) read them under the same keys.
import { sk_opts_entrySchema } from '../../image/gen/sk-opts_pb.js';
import { hasField } from '../../image/presence.js';
import { SO } from '../../sys/index.js';
import type { FdObservation } from './fd-kind.js';
import type { SkOpts } from './sk-opts.js';
import { optLabel, optText, recordBytes, type ProtoOpt } from './sk-proto-opts.js';
import { expectedFilter } from './sk-filter.js';

/** Socket options compared: key, option, the sk_opts_entry field(s), how the value reads. */
export const SOCKET_OPTIONS = [
  ['SO_SNDBUF', SO.SNDBUF, 'soSndbuf', 'int'],
  ['SO_RCVBUF', SO.RCVBUF, 'soRcvbuf', 'int'],
  ['SO_SNDTIMEO', SO.SNDTIMEO, 'soSndTmo', 'timeval'],
  ['SO_RCVTIMEO', SO.RCVTIMEO, 'soRcvTmo', 'timeval'],
  ['SO_KEEPALIVE', SO.KEEPALIVE, 'soKeepalive', 'bool'],
  ['SO_PASSCRED', SO.PASSCRED, 'soPasscred', 'bool'],
  ['SO_BROADCAST', SO.BROADCAST, 'soBroadcast', 'bool'],
  ['SO_REUSEPORT', SO.REUSEPORT, 'soReuseport', 'bool'],
  ['SO_DONTROUTE', SO.DONTROUTE, 'soDontroute', 'bool'],
  ['SO_PRIORITY', SO.PRIORITY, 'soPriority', 'int'],
  ['SO_RCVLOWAT', SO.RCVLOWAT, 'soRcvlowat', 'int'],
  ['SO_MARK', SO.MARK, 'soMark', 'int'],
  ['SO_OOBINLINE', SO.OOBINLINE, 'soOobinline', 'int'],
] as const;

/** The options the image records (sndbuf, rcvbuf and timeouts always; the rest if present). */
export function expectSkOpts(s: FdObservation, key: string, opts: SkOpts): void {
  const rec = opts as unknown as Record<string, unknown>;
  for (const [name, , field, how] of SOCKET_OPTIONS) {
    if (how === 'timeval') {
      s.set(`${key} ${name}`, `${rec[`${field}Sec`]}.${rec[`${field}Usec`]}`);
      continue;
    }
    if (!hasField(sk_opts_entrySchema, opts, field)) continue;
    s.set(`${key} ${name}`, how === 'bool' ? (rec[field] ? '1' : '0') : String(rec[field]));
  }
  for (const o of (opts.cryoOpts ?? []) as ProtoOpt[]) s.set(`${key} ${optLabel(o)}`, optText(recordBytes(o)));
  const filter = expectedFilter(opts);
  if (filter) s.set(`${key} SO_ATTACH_FILTER`, filter);
}
