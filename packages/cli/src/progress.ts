import type { ExtractProgress } from '@pglite-infer/vindex'

const LABELS: Record<ExtractProgress['stage'], string> = {
  embeddings: 'embeddings',
  layers: 'gate + down_meta',
  weights: 'weights',
  files: 'index',
}

/**
 * A progress bar on stderr, redrawn in place on a TTY and printed once per
 * stage change (plus completion) otherwise, so logs stay readable.
 */
export class ProgressBar {
  private lastStage = ''
  private lastDraw = 0
  private readonly tty = process.stderr.isTTY === true

  update(p: ExtractProgress): void {
    const stageChanged = p.stage !== this.lastStage
    const finished = p.done >= p.total
    const now = Date.now()
    if (this.tty) {
      if (!finished && !stageChanged && now - this.lastDraw < 100) return
      this.lastDraw = now
      process.stderr.write(`\r\x1b[2K${this.line(p)}`)
      if (finished) process.stderr.write('\n')
    } else if (finished || stageChanged) {
      process.stderr.write(`${this.line(p)}\n`)
    }
    this.lastStage = p.stage
  }

  private line(p: ExtractProgress): string {
    const width = 30
    const frac = p.total > 0 ? Math.min(1, p.done / p.total) : 1
    const filled = Math.round(frac * width)
    const bar = '#'.repeat(filled) + '-'.repeat(width - filled)
    const pct = `${Math.floor(frac * 100)}`.padStart(3)
    return `${LABELS[p.stage].padEnd(16)} [${bar}] ${pct}% ${p.done}/${p.total} ${p.detail}`
  }
}
