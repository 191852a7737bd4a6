// What travels through the queue: a trial job (a trial's configuration, its state, the epoch to
// advance it to, and where its data are) and its result (the trial's new state). Both are plain
// JSON checked by strict zod schemas — never evaluated as code, every size bounded — and both
// carry the kana-native version: a worker of another version refuses the job, a coordinator
// refuses a result from one.
//
// A trial's state is the RunSnapshot of training/checkpoint.ts, encoded with the same codec as the
// checkpoints (encodeSnapshot/decodeSnapshot) into one safetensors blob: the tensors, and the JSON
// record in its metadata (non-finite numbers as "NaN"/"Infinity" strings). The blob travels inline,
// base64, with its SHA-256; it is at most MAX_SNAPSHOT_BYTES (a [784,1024,1024,49] model with its
// best weights and Adam moments is about 30 MB). Inline keeps workers free of a shared disk.
import { z } from 'zod'
import { decodeSnapshot, decodeTensors, encodeSnapshot, encodeTensors, sha256, type RunSnapshot, type Tensor } from '../training/checkpoint'
import { KANA_VERSION } from '../engine/machine'
import { ModelConfigSchema, type ModelConfig } from '../training/config'
import { parseNonFinite, stringifyNonFinite } from '../output/json'

export const JOB_FORMAT = 'kana-native-trial-job'
export const RESULT_FORMAT = 'kana-native-trial-result'
const SNAPSHOT_FORMAT = 'kana-native-trial-snapshot'
/** The job format's own version (the kana-native version is checked as well). */
export const PROTOCOL = 1
/** Largest trial snapshot a job or result may carry (decoded bytes). */
export const MAX_SNAPSHOT_BYTES = 128 * 1024 * 1024
const MAX_BASE64 = Math.ceil(MAX_SNAPSHOT_BYTES / 3) * 4

/** The version a job and its result carry: both sides must run the same. */
export { KANA_VERSION }

/** A job or result that cannot be used: the message says why (a worker fails the job with it). */
export class PayloadError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'PayloadError'
  }
}

const hex64 = z.string().regex(/^[0-9a-f]{64}$/)
const fraction = z.number().min(0).max(1)
const path = z.string().min(1).max(4096).refine((s) => !s.includes('\0'), 'a path without NUL bytes')

/** The job's data: files by path or a named data set, the split that made the parts, and their SHA-256. */
export const DataSpecSchema = z.strictObject({
  images: path.optional(),
  labels: path.optional(),
  dataset: z.enum(['k49', 'kmnist', 'fashion-mnist']).optional(),
  split: z.strictObject({ train: fraction, validation: fraction, test: fraction }),
  seed: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  /** training/checkpoint.ts dataFingerprint: SHA-256 over the three parts exactly as trained on. */
  fingerprint: hex64,
}).refine((d) => (d.dataset !== undefined ? d.images === undefined && d.labels === undefined : d.images !== undefined && d.labels !== undefined), 'the data must name either images and labels files or a data set')
export type DataSpec = z.infer<typeof DataSpecSchema>

const SnapshotBlobSchema = z.strictObject({ sha256: hex64, base64: z.string().max(MAX_BASE64) })

export const TrialJobSchema = z.strictObject({
  format: z.literal(JOB_FORMAT),
  protocol: z.literal(PROTOCOL),
  kanaNative: z.string().max(64),
  /** The trial's key in the experiment (M0, search/3, …): for messages. */
  key: z.string().regex(/^[A-Za-z0-9_./-]{1,200}$/),
  config: ModelConfigSchema,
  threads: z.number().int().min(1).max(1024),
  untilEpoch: z.number().int().min(1).max(1_000_000),
  data: DataSpecSchema,
  snapshot: SnapshotBlobSchema,
})
export type TrialJob = z.infer<typeof TrialJobSchema>

export const TrialResultSchema = z.strictObject({
  format: z.literal(RESULT_FORMAT),
  protocol: z.literal(PROTOCOL),
  kanaNative: z.string().max(64),
  key: z.string().max(200),
  untilEpoch: z.number().int().min(1),
  snapshot: SnapshotBlobSchema,
  /** Who trained it (host:pid), for messages. */
  worker: z.string().max(300),
})
export type TrialResult = z.infer<typeof TrialResultSchema>

/** The version check first, with its own message, then the schema. */
function checkVersioned(v: unknown, format: string, what: string): void {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new PayloadError(`${what} is not a JSON object`)
  const o = v as Record<string, unknown>
  if (o.format !== format) throw new PayloadError(`${what} is not a ${format} (format ${JSON.stringify(String(o.format)).slice(0, 80)})`)
  if (o.protocol !== PROTOCOL || o.kanaNative !== KANA_VERSION) {
    throw new PayloadError(`${what} was made by kana-native ${String(o.kanaNative).slice(0, 64)} (job protocol ${String(o.protocol).slice(0, 16)}); this is kana-native ${KANA_VERSION} (protocol ${PROTOCOL}): coordinator and workers must run the same version`)
  }
}

function parse<S extends z.ZodType>(schema: S, v: unknown, what: string): z.infer<S> {
  const r = schema.safeParse(v)
  if (r.success) return r.data
  const issue = r.error.issues[0]
  throw new PayloadError(`${what} is malformed: ${issue.path.join('.') || '(top)'}: ${issue.message}`)
}

export function parseJob(v: unknown): TrialJob {
  checkVersioned(v, JOB_FORMAT, 'the job')
  return parse(TrialJobSchema, v, 'the job')
}

export function parseResult(v: unknown): TrialResult {
  checkVersioned(v, RESULT_FORMAT, 'the result')
  return parse(TrialResultSchema, v, 'the result')
}

// ---------------------------------------------------------------------------------------------
// The snapshot blob

export function encodeSnapshotBlob(s: RunSnapshot): { sha256: string; base64: string; bytes: Uint8Array } {
  const tensors: [string, Tensor][] = []
  const run = encodeSnapshot('', s, tensors)
  const bytes = encodeTensors(tensors, { 'kana-native': JSON.stringify({ format: SNAPSHOT_FORMAT, version: PROTOCOL }), run: stringifyNonFinite(run) })
  if (bytes.length > MAX_SNAPSHOT_BYTES) throw new PayloadError(`the trial's state takes ${bytes.length} bytes, more than a job may carry (${MAX_SNAPSHOT_BYTES})`)
  return { sha256: sha256(bytes), base64: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64'), bytes }
}

/** The snapshot of a blob, its hash and every field checked; `layers` are the model's (the weights must fit them). */
export function decodeSnapshotBlob(blob: { sha256: string; base64: string }, layers: number[], what: string): RunSnapshot {
  const bytes = new Uint8Array(Buffer.from(blob.base64, 'base64'))
  if (bytes.length > MAX_SNAPSHOT_BYTES) throw new PayloadError(`${what}: the snapshot is larger than ${MAX_SNAPSHOT_BYTES} bytes`)
  if (sha256(bytes) !== blob.sha256) throw new PayloadError(`${what}: the snapshot does not match its SHA-256`)
  const bad = (why: string): never => { throw new PayloadError(`${what}: the snapshot is malformed: ${why}`) }
  let meta: Record<string, unknown>
  let tensors: Map<string, Tensor>
  try {
    ({ meta, tensors } = decodeTensors(bytes, 'the snapshot'))
  } catch (e) {
    return bad((e as Error).message)
  }
  let head: unknown
  try { head = JSON.parse(String(meta['kana-native'])) } catch { return bad('no kana-native header') }
  if (!isObj(head) || head.format !== SNAPSHOT_FORMAT || head.version !== PROTOCOL) bad('not a kana-native trial snapshot of this version')
  let record: unknown
  try {
    record = parseNonFinite(String(meta.run))
  } catch {
    return bad('its record is not JSON')
  }
  const s = decodeSnapshot('', record, tensors, Float32Array, bad)
  if (s.released || !s.model) bad('it holds no model')
  const sizes = layers.slice(1).flatMap((n, l) => [layers[l] * n, n])
  const w = s.model!.weights
  if (w.length !== sizes.length || w.some((x, k) => x.length !== sizes[k])) bad(`its weights do not fit layers [${layers}]`)
  return s
}

const isObj = (v: unknown): v is Record<string, any> => typeof v === 'object' && v !== null && !Array.isArray(v)

/** A job id: idempotent by content — the same trial state advanced to the same epoch is the same job (BullMQ ids take no ':'). */
export function jobIdOf(key: string, untilEpoch: number, job: Omit<TrialJob, 'snapshot'> & { snapshot: { sha256: string } }): string {
  const h = sha256(new TextEncoder().encode(stringifyNonFinite([job.protocol, job.kanaNative, job.config, job.threads, job.untilEpoch, job.data, job.snapshot.sha256])))
  return `${key.replace(/[^A-Za-z0-9_-]/g, '_')}-e${untilEpoch}-${h.slice(0, 32)}`
}

export type { ModelConfig }
