// `cryo show FILE`: one image as JSON. A directory or a missing file is said in words, with what
// to give instead, not as a raw EISDIR/ENOENT.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { showImage } from '../image/show.js';

export function runShow(file: string): void {
  let st;
  try {
    st = statSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? `${file}: no such file (give one image file, e.g. DIR/pstree.img)` : `${file}: cannot read it (${code ?? (e as Error).message})`);
  }
  if (st.isDirectory()) {
    let some = '';
    try {
      const imgs = readdirSync(file).filter((n) => n.endsWith('.img')).sort();
      if (imgs.length) some = ` such as ${imgs.slice(0, 3).map((n) => join(file, n)).join(', ')}`;
    } catch {
      /* unreadable: say it without examples */
    }
    throw new Error(`${file} is a directory: show prints one image file${some || ' (DIR/pstree.img, DIR/core-PID.img, ...)'}`);
  }
  process.stdout.write(JSON.stringify(showImage(file), null, 2) + '\n');
}
