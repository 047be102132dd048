// /proc/PID/maps: one VMA per line.

export interface MapsEntry {
  start: bigint;
  end: bigint;
  read: boolean;
  write: boolean;
  exec: boolean;
  shared: boolean;
  offset: bigint;
  dev: string;
  inode: number;
  /** The path or the kernel's name ("[heap]", "[stack]", "[vdso]", "[anon:xxx]"), or "". */
  path: string;
  /** The file was unlinked after it was mapped ("(deleted)" suffix). */
  deleted: boolean;
}

const LINE = /^([0-9a-f]+)-([0-9a-f]+) ([r-])([w-])([x-])([ps]) ([0-9a-f]+) ([0-9a-f]+:[0-9a-f]+) (\d+)\s*(.*)$/;

export function parseMaps(text: string): MapsEntry[] {
  const out: MapsEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const m = LINE.exec(line);
    if (!m) throw new Error(`unparsable maps line: ${line}`);
    let path = m[10]!;
    let deleted = false;
    if (path.endsWith(' (deleted)')) {
      deleted = true;
      path = path.slice(0, -' (deleted)'.length);
    }
    out.push({
      start: BigInt('0x' + m[1]),
      end: BigInt('0x' + m[2]),
      read: m[3] === 'r',
      write: m[4] === 'w',
      exec: m[5] === 'x',
      shared: m[6] === 's',
      offset: BigInt('0x' + m[7]),
      dev: m[8]!,
      inode: Number(m[9]),
      path,
      deleted,
    });
  }
  return out;
}
