/**
 * Plain-text tables for people: a header row, columns padded to their widest cell,
 * numbers aligned right. Scripts use `--json` instead, so the layout may change.
 */

export interface Column<Row> {
  header: string;
  value: (row: Row) => unknown;
  /** Right-align (default: numbers right, everything else left). */
  align?: 'left' | 'right';
}

/** Renders a cell: null/undefined as `-`, arrays as comma lists, booleans as yes/no. */
export function cellText(value: unknown): string {
  if (value === null || value === undefined) return '-';
  if (Array.isArray(value)) return value.length === 0 ? '-' : value.map(cellText).join(',');
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

export function renderTable<Row>(columns: Array<Column<Row>>, rows: readonly Row[]): string {
  const cells = rows.map((row) => columns.map((column) => column.value(row)));
  const texts = cells.map((row) => row.map(cellText));
  const widths = columns.map((column, i) => Math.max(column.header.length, ...texts.map((row) => row[i]!.length)));
  const rightAligned = columns.map(
    (column, i) => column.align === 'right' || (column.align === undefined && cells.length > 0 && cells.every((row) => typeof row[i] === 'number' || row[i] === null || row[i] === undefined) && cells.some((row) => typeof row[i] === 'number')),
  );
  const line = (row: string[]) =>
    row
      .map((text, i) => (rightAligned[i] ? text.padStart(widths[i]!) : i === row.length - 1 ? text : text.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(columns.map((column) => column.header.toUpperCase())), ...texts.map(line)].join('\n') + '\n';
}

/** `key: value` lines with the keys padded, for a summary above or below a table. */
export function renderFields(fields: Array<[string, unknown]>): string {
  const width = Math.max(0, ...fields.map(([name]) => name.length));
  return fields.map(([name, value]) => `${(name + ':').padEnd(width + 1)} ${cellText(value)}`).join('\n') + '\n';
}
