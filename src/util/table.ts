/**
 * A plain-text table: columns padded to their widest cell; cells that `alignRight` picks (numbers,
 * typically) are right-aligned. Trailing blanks are trimmed.
 */
export function formatTable(
  rows: string[][],
  alignRight: (cell: string, column: number) => boolean = () => false,
): string {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return (
    rows
      .map((r) =>
        r
          .map((c, i) => (alignRight(c, i) ? c.padStart(w[i]!) : c.padEnd(w[i]!)))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}
