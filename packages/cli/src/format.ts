/** Human-readable byte counts: 1536 -> "1.5 KiB". */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let u = 0
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024
    u++
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`
}

/** Left-aligned two-column table lines. */
export function table(rows: [string, string][], indent = ''): string {
  const w = Math.max(...rows.map(([k]) => k.length))
  return rows.map(([k, v]) => `${indent}${k.padEnd(w)}  ${v}`).join('\n')
}
