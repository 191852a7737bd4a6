// Checkpoints of an interrupted experiment, so that `experiment --resume DIR` finishes it with
// exactly the result an uninterrupted run gives (same seed, same threads).
//
//   EXP_DIR/checkpoint/
//     experiment-checkpoint.json   the index, written last and renamed into place
//     tensors.<id>.safetensors     every trial's weights, best weights and Adam moments (F32), and
//                                  the reference's float64 parameters and moments (F64)
// Each trial and the reference run are a RunSnapshot, written and read by the one codec of
// training/checkpoint.ts (encodeSnapshot/decodeSnapshot) with train's mechanics (commitCheckpoint,
// readRecordedFile).
//
// How resuming works: an experiment is a deterministic function of its resolved configuration,
// so a resumed experiment runs the same code from the top, and every trial it creates (M0, each
// search trial, M4, the agreement runs, …) is restored by its key when the checkpoint holds it.
// Finished work is then skipped (advancing a trial to an epoch it has reached does nothing, and
// successive halving ranks the restored scores the same way), unfinished work continues from the
// exact mini-batch, and the reference continues from its own state. Trials dropped by the search
// keep only their records (their models were freed).
//
// The index records the tensor file's size and SHA-256 and is sealed with the hash of its own
// text, as train's checkpoints are (checkpoint.ts): a crash while writing leaves the previous
// checkpoint or the new one, and a damaged file is refused instead of silently resuming wrong.
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import {
  CHECKPOINT_DIR, CheckpointError, commitCheckpoint, readIndexText, removeCheckpoint, decodeTensors, encodeTensors, isInt, isObj, openSealedJson, readRecordedFile,
  decodeSnapshot, encodeSnapshot, checkNoUnusedTensors, type RunSnapshot, type Tensor,
} from '../training/checkpoint'
import { Trial, type TrialOptions, type ModelConfig } from '../training/trial'
import type { TrialData } from '../training/sources'
import type { ReferenceOutcome, ReferenceState, ResyncRecord } from './reference-trial'
import { checkModelConfig } from '../training/config'
import { checkExperimentConfig, type ExperimentConfig } from './config'

export const EXPERIMENT_CHECKPOINT_DIR = CHECKPOINT_DIR
export const EXPERIMENT_CHECKPOINT_INDEX = 'experiment-checkpoint.json'
const FORMAT = 'kana-native-experiment-checkpoint'
const VERSION = 2

/** What the experiment records about itself next to the trials (its resolved configuration, the data's fingerprint, …). */
export interface ExperimentCheckpointHeader {
  /** The resolved configuration (experiments.ts ResolvedExperiment, as configForFile writes it). */
  config: unknown
  data: { fingerprint: string; samples: { train: number; validation: number; test: number } }
  /** 'interrupted', or the phase just completed. */
  reason: string
  /** Wall seconds of the experiment so far, over all its sessions. */
  seconds: number
  /** How many times it was interrupted before (this one included when reason is 'interrupted'). */
  interruptions: number
  command?: string[]
}

export interface LoadedExperimentCheckpoint extends ExperimentCheckpointHeader {
  dir: string
  createdAt: string
  trials: Map<string, RunSnapshot & { config: ModelConfig }>
  reference: { state?: ReferenceState; outcome?: ReferenceOutcome }
  resync: ResyncRecord[]
}

/**
 * The trials and the reference run of one experiment, by key: restores each trial from a loaded
 * checkpoint when it is created, and writes them all when asked.
 */
export class ExperimentStore {
  private readonly live = new Map<string, Trial>()
  reference: { state?: ReferenceState; outcome?: ReferenceOutcome }
  /** The re-synchronised reference epochs done so far (reference-trial.ts runResync). */
  resync: ResyncRecord[]

  constructor(private readonly loaded?: LoadedExperimentCheckpoint) {
    this.reference = { ...loaded?.reference }
    this.resync = [...(loaded?.resync ?? [])]
  }

  /** A new trial, in the state the checkpoint saved under `key` when it holds one. */
  trial(key: string, config: ModelConfig, data: TrialData, opts: TrialOptions): Trial {
    if (this.live.has(key)) throw new Error(`internal error: two trials under the key ${key}`)
    const t = new Trial(config, data, opts)
    const saved = this.loaded?.trials.get(key)
    if (saved) {
      if (JSON.stringify(saved.config) !== JSON.stringify(config)) {
        t.release()
        throw new CheckpointError('ECONFLICT', `the checkpoint in ${this.loaded!.dir} holds trial ${key} with another configuration than this experiment makes: it belongs to a different experiment or kana-native version`)
      }
      try {
        t.restore(saved)
      } catch (e) {
        if (!t.released) t.release()
        throw new CheckpointError('ECORRUPT', `the checkpoint in ${this.loaded!.dir} is damaged: trial ${key}: ${(e as Error).message}`, { cause: e })
      }
    }
    this.live.set(key, t)
    return t
  }

  /** Writes every trial (all must be at rest) and the reference into DIR/checkpoint/; returns that folder. */
  async write(dir: string, header: ExperimentCheckpointHeader): Promise<string> {
    const cdir = join(dir, EXPERIMENT_CHECKPOINT_DIR)
    const tensors: [string, Tensor][] = []
    const list = (prefix: string, xs: Tensor[] | undefined): number => {
      xs?.forEach((x, i) => tensors.push([`${prefix}.${i}`, x]))
      return xs?.length ?? 0
    }
    const trials: Record<string, unknown> = {}
    for (const [key, t] of this.live) trials[key] = { config: t.config, ...encodeSnapshot(`t/${key}/`, t.snapshot(), tensors) }
    let reference: unknown = null
    const { state, outcome } = this.reference
    if (outcome) {
      const { weights, weights64, ...rest } = outcome
      reference = { outcome: { ...rest, tensors: { weights: list('r/outcome/weights', weights), weights64: list('r/outcome/weights64', weights64) } } }
    } else if (state) {
      reference = { state: encodeSnapshot('r/', state, tensors) }
    }
    const bytes = encodeTensors(tensors, { 'kana-native': JSON.stringify({ format: FORMAT, version: VERSION }) })
    await commitCheckpoint(cdir, EXPERIMENT_CHECKPOINT_INDEX, [['tensors', bytes]], (files) => ({
      format: FORMAT, version: VERSION, createdAt: new Date().toISOString(), ...header, files, trials, reference, resync: this.resync,
    }))
    return cdir
  }
}


export const removeExperimentCheckpoint = (dir: string): Promise<void> => removeCheckpoint(dir, EXPERIMENT_CHECKPOINT_INDEX)

/** Whether DIR holds an experiment checkpoint (the index). */
export async function hasExperimentCheckpoint(dir: string): Promise<boolean> {
  try {
    await fsp.access(join(dir, EXPERIMENT_CHECKPOINT_DIR, EXPERIMENT_CHECKPOINT_INDEX))
    return true
  } catch {
    return false
  }
}

const isCount = (v: unknown): v is number => isInt(v)

/** Reads and checks DIR/checkpoint/: the index, the tensor file's size and hash, every tensor named there. */
export async function readExperimentCheckpoint(dir: string): Promise<LoadedExperimentCheckpoint> {
  const cdir = join(dir, EXPERIMENT_CHECKPOINT_DIR)
  const text = await readIndexText(dir, EXPERIMENT_CHECKPOINT_INDEX, { what: 'experiment', finishedFile: 'experiment.json' })
  const bad = (why: string): never => { throw new CheckpointError('ECORRUPT', `the experiment checkpoint in ${cdir} is damaged: ${why}`) }
  const ix = openSealedJson(text, EXPERIMENT_CHECKPOINT_INDEX, bad)
  if (ix.format !== FORMAT) bad(`${EXPERIMENT_CHECKPOINT_INDEX} is not a kana-native experiment checkpoint`)
  if (ix.version !== VERSION) throw new CheckpointError('EVERSION', `the experiment checkpoint in ${cdir} has version ${ix.version}; this kana-native reads version ${VERSION}`)
  if (!isObj(ix.config) || !isObj(ix.data) || typeof ix.data.fingerprint !== 'string' || !isObj(ix.trials) || typeof ix.seconds !== 'number' || !isCount(ix.interruptions)) bad('the index is incomplete')
  try {
    checkExperimentConfig(ix.config as ExperimentConfig)
  } catch (e) {
    bad(`config: ${(e as Error).message}`)
  }
  const bytes = await readRecordedFile(cdir, ix.files?.tensors, 'the tensors', EXPERIMENT_CHECKPOINT_INDEX, bad)
  const { tensors } = decodeTensors(bytes, join(cdir, ix.files.tensors.name))
  const take = <T extends Tensor>(prefix: string, count: unknown, type: { new (n: number): T }): T[] | undefined => {
    if (!isCount(count)) bad(`the tensor count of ${prefix} is malformed`)
    if (count === 0) return undefined
    return Array.from({ length: count as number }, (_, i) => {
      const t = tensors.get(`${prefix}.${i}`)
      if (!(t instanceof type)) bad(`tensor ${prefix}.${i} is missing or of the wrong type`)
      return t as T
    })
  }
  const trials: LoadedExperimentCheckpoint['trials'] = new Map()
  for (const [key, r] of Object.entries(ix.trials as Record<string, any>)) {
    if (!isObj(r) || !isObj(r.config)) bad(`trial ${key} is malformed`)
    try {
      checkModelConfig(r.config as ModelConfig)
    } catch (e) {
      bad(`trial ${key}: config: ${(e as Error).message}`)
    }
    trials.set(key, { ...decodeSnapshot(`t/${key}/`, r, tensors, Float32Array, bad), config: r.config as ModelConfig })
  }
  const reference: LoadedExperimentCheckpoint['reference'] = {}
  if (ix.reference !== null) {
    const r = ix.reference
    if (isObj(r?.outcome) && isObj(r.outcome.tensors)) {
      const { tensors: tn, ...rest } = r.outcome
      const weights = take('r/outcome/weights', tn.weights, Float32Array)
      const weights64 = take('r/outcome/weights64', tn.weights64, Float64Array)
      if (!weights || !weights64) bad('the reference outcome lacks its weights')
      reference.outcome = { ...rest, weights: weights!, weights64: weights64! } as ReferenceOutcome
    } else if (isObj(r?.state)) {
      const state = decodeSnapshot('r/', r.state, tensors, Float64Array, bad)
      if (!state.model || state.released) bad('the reference state lacks its parameters')
      reference.state = state
    } else bad('the reference entry is malformed')
  }
  checkNoUnusedTensors(tensors, bad)
  if (!Array.isArray(ix.resync) || !ix.resync.every((r: unknown) => isObj(r) && Number.isSafeInteger(r.epoch) && typeof r.relDiff === 'number')) bad('the re-synchronised epochs are malformed')
  return {
    dir, createdAt: ix.createdAt, config: ix.config, data: ix.data, reason: ix.reason, seconds: ix.seconds, interruptions: ix.interruptions,
    command: ix.command, trials, reference, resync: ix.resync,
  }
}
