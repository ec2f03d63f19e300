/**
 * A table whose body renders only the rows in view (a thousand workers or ten thousand VMs stay
 * fast), with spacer rows above and below so the scrollbar and the header stay those of a table.
 */
import { useVirtualizer } from '@tanstack/react-virtual';
import { type ReactNode, useRef } from 'react';

export function VirtualTable<T>({
  rows,
  header,
  row,
  label,
  rowHeight = 41,
  maxHeight = '70vh',
  rowKey,
}: {
  rows: readonly T[];
  header: ReactNode;
  row: (item: T) => ReactNode;
  label: string;
  rowHeight?: number;
  maxHeight?: string;
  rowKey: (item: T) => string;
}) {
  const scroller = useRef<HTMLElement>(null);
  const virtual = useVirtualizer({
    count: rows.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => rowHeight,
    overscan: 12,
    getItemKey: (index) => rowKey(rows[index]!),
  });
  const items = virtual.getVirtualItems();
  const top = items[0]?.start ?? 0;
  const bottom = virtual.getTotalSize() - (items.at(-1)?.end ?? 0);
  return (
    // The region scrolls, so it takes focus (keyboard users scroll it with the arrows).
    <section
      ref={scroller}
      className="overflow-auto rounded-lg border border-slate-200 dark:border-slate-800"
      style={{ maxHeight }}
      // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrollable region must be focusable
      tabIndex={0}
      aria-label={label}
    >
      <table className="table">
        <thead className="sticky top-0 z-10 bg-slate-100 dark:bg-slate-800">{header}</thead>
        <tbody>
          {top > 0 ? (
            <tr aria-hidden style={{ height: top }}>
              <td colSpan={99} className="border-0 p-0" />
            </tr>
          ) : null}
          {items.map((item) => row(rows[item.index]!))}
          {bottom > 0 ? (
            <tr aria-hidden style={{ height: bottom }}>
              <td colSpan={99} className="border-0 p-0" />
            </tr>
          ) : null}
        </tbody>
      </table>
    </section>
  );
}
