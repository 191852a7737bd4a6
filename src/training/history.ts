// The per-epoch history of a run as files: history.csv and history.json, rewritten after every
// epoch so that an interrupted run still has its log.
import { join } from 'node:path'
import { writeFileAtomic } from '../output/atomic'
import type { EpochRecord } from './records'

const HISTORY_COLUMNS: (keyof EpochRecord)[] = ['epoch', 'lr', 'trainLoss', 'trainAccuracy', 'valLoss', 'valAccuracy', 'seconds']

export function historyCsv(history: EpochRecord[]): string {
  const lines = [HISTORY_COLUMNS.join(',')]
  for (const r of history) lines.push(HISTORY_COLUMNS.map((c) => String(r[c])).join(','))
  return lines.join('\n') + '\n'
}

export async function writeHistory(dir: string, history: EpochRecord[]): Promise<void> {
  await writeFileAtomic(join(dir, 'history.csv'), historyCsv(history))
  await writeFileAtomic(join(dir, 'history.json'), JSON.stringify(history, null, 2) + '\n')
}
