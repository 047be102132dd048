// A file whose /proc link reads "(deleted)" although it still has links: unlinked from the name
// it was opened or mapped by, but linked under another. glibc's sem_open makes a named semaphore
// as a temporary file, link()s it to its name and unlinks the temporary, so the process that
// made it maps "/dev/shm/sem.XXXXXX (deleted)" while every other process maps
// "/dev/shm/sem.NAME" (Python's multiprocessing locks and queues under the forkserver and spawn
// start methods). Saved as a ghost file it would come back as a copy of its own, and the
// semaphore the processes share would be split in two; opened again by its other name, they
// share it as before.
import { dirname } from 'node:path';
import { readdirSync, statSync } from 'node:fs';

/** What a "(deleted)" link stands for. */
export type Unlinked =
  | { kind: 'deleted' } // no links left: a ghost file
  | { kind: 'linked'; path: string } // linked under `path` (cryo's view), in the same directory
  | { kind: 'lost'; links: number }; // linked somewhere cryo does not look

/**
 * `gone`: the path the link names (without " (deleted)"); `source`: a /proc path that opens the
 * file (fd or map_files link). The other name is looked for in the same directory, which is
 * where link-then-unlink leaves it; a file linked only in another directory is `lost`.
 */
export function unlinkedName(pid: number, gone: string, source: string): Unlinked {
  let st;
  try {
    st = statSync(source, { bigint: true });
  } catch {
    return { kind: 'deleted' }; // closed meanwhile: the ghost path reports it
  }
  if (st.nlink === 0n || st.isDirectory()) return { kind: 'deleted' };
  const dir = dirname(gone);
  const root = `/proc/${pid}/root`;
  let names: string[] = [];
  try {
    names = readdirSync(`${root}${dir}`);
  } catch {
    /* the directory is gone too */
  }
  for (const name of names) {
    const path = `${dir === '/' ? '' : dir}/${name}`;
    try {
      const other = statSync(`${root}${path}`, { bigint: true });
      if (other.ino === st.ino && other.dev === st.dev) return { kind: 'linked', path };
    } catch {
      /* removed meanwhile */
    }
  }
  return { kind: 'lost', links: Number(st.nlink) };
}

/** The refusal of a `lost` one (restored as a copy it would no longer be the file others open). */
export const lostReason = (gone: string, links: number): string =>
  `${gone} was unlinked but the file is still linked elsewhere (${links} link${links === 1 ? '' : 's'}, none in its directory) — not supported: a copy would not be the file its other names open`;
