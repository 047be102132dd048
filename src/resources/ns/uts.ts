// A UTS namespace: its hostname and NIS domain name (CRIU's utsns_entry, utsns-N.img). Read
// through /proc/sys/kernel, which answers for the caller's UTS namespace, and set with
// sethostname/setdomainname: both run in the ns helper after setns into the task's namespace.
import { readFileSync } from 'node:fs';
import { sys } from '../../sys/index.js';

export interface UtsData {
  nodename: string;
  domainname: string;
}

export function dumpUts(): UtsData {
  const read = (f: string) => readFileSync(`/proc/sys/kernel/${f}`, 'utf8').replace(/\n$/, '');
  return { nodename: read('hostname'), domainname: read('domainname') };
}

export function restoreUts(u: UtsData): void {
  const host = Buffer.from(u.nodename);
  const domain = Buffer.from(u.domainname);
  sys('sethostname', [host, host.length], `hostname ${u.nodename}`);
  sys('setdomainname', [domain, domain.length], `domain name ${u.domainname}`);
}
