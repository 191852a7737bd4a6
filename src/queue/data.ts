// A job's data: the coordinator names them (files by absolute path, or a named data set, with the
// split and seed that made the parts and their SHA-256); a worker loads them and refuses to train
// unless the parts hash to the same fingerprint — no silent training on other data.
import { loadInputs, type Inputs } from '../data/inputs'
import { dataFingerprint } from '../training/checkpoint'
import { trialData, type TrialData } from '../training/sources'
import type { SplitFractions } from '../data/split'
import { PayloadError, type DataSpec } from './payload'

/** What the coordinator's jobs say about its data; in-memory arrays cannot be sent. */
export function dataSpecOf(inputs: Inputs, split: SplitFractions, seed: number, fingerprint: string): DataSpec {
  const src = inputs.source as { images?: string; labels?: string; dataset?: DataSpec['dataset']; data?: string }
  if (src.dataset) return { dataset: src.dataset, split, seed, fingerprint }
  if (typeof src.images === 'string' && typeof src.labels === 'string') return { images: src.images, labels: src.labels, split, seed, fingerprint }
  throw new RangeError('a job queue needs data the workers can load: images and labels files (or a named data set), not arrays in memory')
}

/** Loads a job's data (a worker's own cache directory for named data sets) and checks its fingerprint. */
export async function loadJobData(spec: DataSpec, cacheDir?: string): Promise<TrialData> {
  const where = spec.dataset ? `the data set ${spec.dataset}` : `${spec.images} and ${spec.labels}`
  let inputs: Inputs
  try {
    inputs = await loadInputs({ images: spec.images, labels: spec.labels, dataset: spec.dataset, cacheDir, split: spec.split, seed: spec.seed })
  } catch (e) {
    throw new PayloadError(`cannot load the job's data (${where}) on this worker: ${(e as Error).message}`)
  }
  const got = dataFingerprint(inputs)
  if (got !== spec.fingerprint) {
    throw new PayloadError(`the job's data (${where}) on this worker are not those of the coordinator: their SHA-256 after the split is ${got.slice(0, 16)}…, the job says ${spec.fingerprint.slice(0, 16)}… (different files, or changed since)`)
  }
  return trialData(inputs.train, inputs.validation, inputs.features, inputs.classes)
}
