// Sets of page ranges as sorted, merged half-open spans of page numbers: which saved pages of a
// forked child are stale (the parent's, not the child's) and must be dropped.

/** A half-open range of page numbers. */
export type Span = [number, number];

function normalize(spans: Span[]): Span[] {
  const out: Span[] = [];
  for (const [a, b] of [...spans].sort((x, y) => x[0] - y[0])) {
    const last = out[out.length - 1];
    if (last && a <= last[1]) last[1] = Math.max(last[1], b);
    else if (b > a) out.push([a, b]);
  }
  return out;
}

export function intersect(xs: Span[], ys: Span[]): Span[] {
  const a = normalize(xs);
  const b = normalize(ys);
  const out: Span[] = [];
  for (let i = 0, j = 0; i < a.length && j < b.length; ) {
    const lo = Math.max(a[i]![0], b[j]![0]);
    const hi = Math.min(a[i]![1], b[j]![1]);
    if (lo < hi) out.push([lo, hi]);
    if (a[i]![1] < b[j]![1]) i++;
    else j++;
  }
  return out;
}

export function subtract(xs: Span[], ys: Span[]): Span[] {
  const b = normalize(ys);
  const out: Span[] = [];
  for (const [s0, e] of normalize(xs)) {
    let s = s0;
    for (const [c, d] of b) {
      if (d <= s) continue;
      if (c >= e) break;
      if (c > s) out.push([s, c]);
      s = Math.max(s, d);
      if (s >= e) break;
    }
    if (s < e) out.push([s, e]);
  }
  return out;
}
