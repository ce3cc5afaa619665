// layout.js — rows that leave no holes, for the dashboards (board.js) and the
// automatic page (dashboard.js): a run of tiles splits into rows of equal
// length (8 tiles where 7 fit make two rows of 4, not 7 and 1), and a grid of
// panels stretches the last panel of each row to the row's end, so that no
// panel sits alone beside an empty band. It imports nothing.

/**
 * How many columns `n` tiles take at `width` px, tiles at least `min` px wide
 * with `gap` between them: as many as fit, then as few as keep the same
 * number of rows, so the rows are as even as they can be.
 */
export function evenColumns(n, width, min, gap) {
  const fit = Math.max(1, Math.floor((width + gap) / (min + gap)));
  if (n <= fit) return Math.max(1, n);
  const rows = Math.ceil(n / fit);
  return Math.ceil(n / rows);
}

/**
 * Keeps `grid`'s children in even rows (see `evenColumns`) as it is resized
 * and as children come and go; `min` may be a function of nothing (read at
 * each layout: a phone's tiles are narrower); with `maxWidth`, a run shorter
 * than a row keeps tiles at most that wide. Returns a function that stops it.
 */
export function keepEven(grid, { min: minOf, gap, maxWidth = Infinity }) {
  const apply = () => {
    const min = typeof minOf === 'function' ? minOf() : minOf;
    const width = grid.clientWidth;
    // Columns, not children: a child may span two (a wide tile of /auto).
    const n = [...grid.children].filter((c) => !c.hidden)
      .reduce((sum, c) => {
        const s = getComputedStyle(c);
        return sum + (Number(/span (\d+)/.exec(`${s.gridColumnStart} ${s.gridColumnEnd}`)?.[1]) || 1);
      }, 0);
    if (!width || !n) return;
    const cols = evenColumns(n, width, min, gap);
    const max = Number.isFinite(maxWidth) && n < Math.floor((width + gap) / (min + gap)) ? `${maxWidth}px` : '1fr';
    const value = `repeat(${cols}, minmax(0, ${max}))`;
    if (grid.style.gridTemplateColumns !== value) grid.style.gridTemplateColumns = value;
    grid.dataset.cols = String(cols);
  };
  const ro = typeof ResizeObserver === 'function' ? new ResizeObserver(apply) : null;
  const mo = typeof MutationObserver === 'function' ? new MutationObserver(apply) : null;
  ro?.observe(grid);
  mo?.observe(grid, { childList: true, subtree: true, attributes: true, attributeFilter: ['hidden'] });
  apply();
  return () => { ro?.disconnect(); mo?.disconnect(); };
}

/**
 * Places `items` (`{el, span, full}`: the columns wanted; `full` takes a whole
 * row) in rows of `cols` columns, in order, as CSS grid's auto-placement does,
 * and widens the last item of each row to the row's end. Sets each element's
 * `grid-column` and `data-row`.
 */
export function fillRows(items, cols) {
  let row = 0;
  let used = 0;
  let last = null;
  const close = () => {
    if (last && used < cols) last.cols += cols - used;
  };
  const placed = [];
  for (const it of items) {
    const want = it.full ? cols : Math.max(1, Math.min(it.span ?? 1, cols));
    if (used + want > cols) {
      close();
      row++;
      used = 0;
    }
    last = { el: it.el, cols: want, row };
    placed.push(last);
    used += want;
  }
  close();
  for (const p of placed) {
    const value = `span ${p.cols}`;
    if (p.el.style.gridColumn !== value) p.el.style.gridColumn = value;
    p.el.dataset.row = String(p.row);
  }
}
