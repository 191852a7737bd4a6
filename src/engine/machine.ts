// Facts about the machine a run or an experiment ran on, recorded next to its timings.
import { availableParallelism, cpus, loadavg, release, totalmem, type as osType } from 'node:os'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { native } from './native'

export interface MachineFacts {
  cpuModel: string
  /** Logical CPUs the OS reports, and those this process may use. */
  cpus: number
  availableParallelism: number
  memoryGiB: number
  os: string
  node: string
  kanaNative: string
  /** What the engine's kernels found at run time (native.cpuFeatures()). */
  cpuFeatures: Record<string, unknown>
  /** 1-, 5- and 15-minute load averages when the facts were taken (other work on the machine). */
  loadAverage: number[]
  takenAt: string
}

/** kana-native's version, from its package.json ('unknown' when that cannot be read). */
export const KANA_VERSION: string = (() => {
  try {
    return JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')).version
  } catch {
    return 'unknown'
  }
})()

export function machineFacts(): MachineFacts {
  const list = cpus()
  let cpuFeatures: Record<string, unknown>
  try {
    cpuFeatures = native.cpuFeatures()
  } catch (e) {
    cpuFeatures = { error: (e as Error).message }
  }
  return {
    cpuModel: list[0]?.model?.trim() || 'unknown',
    cpus: list.length,
    availableParallelism: availableParallelism(),
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    os: `${osType()} ${release()} ${process.arch}`,
    node: process.version,
    kanaNative: KANA_VERSION,
    cpuFeatures,
    loadAverage: loadavg().map((x) => Math.round(x * 100) / 100),
    takenAt: new Date().toISOString(),
  }
}
