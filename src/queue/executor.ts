// The coordinator's side: advances a Trial by sending it to the queue as a job and putting the
// state the worker returns back into it. The experiment keeps every decision — successive halving
// ranks and drops trials here, exactly as with local trials; only the epochs are trained elsewhere.
//
// A job's id is a hash of what it asks (configuration, threads, data, state, epoch), so jobs are
// idempotent: a coordinator resumed after a crash makes the same jobs again and is attached to the
// ones still queued, running or finished. The coordinator polls each job's state (cheap; it
// survives a Redis restart, where an event stream would not): a job that vanished (Redis restarted
// without its data) is sent again; a queue unreachable for longer than `outageSeconds` fails the
// run with a clear message. A result is checked (version, schema, hash, that it continues the state
// sent) before it is used: never a wrong result, at worst an error.
import type { Queue } from 'bullmq'
import { abortError } from '../engine/abort'
import type { Trial } from '../training/trial'
import { loadBullmq, parseQueueUrl, QUEUE_NAME, QUEUE_PREFIX, redactSecrets } from './connection'
import {
  decodeSnapshotBlob, encodeSnapshotBlob, jobIdOf, KANA_VERSION, parseResult, PayloadError, PROTOCOL, JOB_FORMAT,
  type DataSpec, type TrialJob,
} from './payload'

export interface TrialQueueOptions {
  data: DataSpec
  log?: (line: string) => void
  /** How long the queue may be unreachable before the run fails (default 120 s). */
  outageSeconds?: number
  /** Milliseconds between two looks at a job's state (default 250). */
  pollMs?: number
}

/** A job failed on its worker, or the queue could not be reached. */
export class QueueError extends Error {
  constructor(message: string) {
    super(redactSecrets(message))
    this.name = 'QueueError'
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
/** Resubmissions of one job whose copy vanished from Redis, before giving up. */
const MAX_RESUBMITS = 5
const KEEP = { age: 7 * 24 * 3600 }

export class TrialQueue {
  private readonly queue: Queue
  readonly display: string
  private readonly log: (line: string) => void
  private readonly outageMs: number
  private readonly pollMs: number

  private constructor(bull: typeof import('bullmq'), url: string, private readonly o: TrialQueueOptions) {
    const conn = parseQueueUrl(url)
    this.display = conn.display
    this.queue = new bull.Queue(QUEUE_NAME, { connection: conn.options, prefix: QUEUE_PREFIX })
    this.queue.on('error', () => {}) // reconnections are the poll loop's business
    this.log = (l) => o.log?.(redactSecrets(l))
    this.outageMs = (o.outageSeconds ?? 120) * 1000
    this.pollMs = o.pollMs ?? 250
  }

  /** Connects (within the outage time) and says how many workers are there. */
  static async open(url: string, o: TrialQueueOptions): Promise<TrialQueue> {
    parseQueueUrl(url) // a bad URL is refused before BullMQ is even looked for
    const q = new TrialQueue(await loadBullmq(), url, o)
    try {
      const workers = await q.call(() => q.queue.getWorkersCount(), 'connect')
      q.log(`queue: ${q.display} (${QUEUE_NAME}), ${workers} worker(s) connected now${workers === 0 ? ': the jobs wait until one connects (kana-native worker --queue URL)' : ''}`)
    } catch (e) {
      await q.close()
      throw e
    }
    return q
  }

  async close(): Promise<void> {
    await this.queue.close().catch(() => {})
  }

  /** `f` until it succeeds; a queue that does not answer for outageSeconds is an error. */
  private async call<T>(f: () => Promise<T>, what: string): Promise<T> {
    const started = performance.now()
    let last: unknown
    for (;;) {
      let timer: NodeJS.Timeout | undefined
      try {
        return await Promise.race([f(), new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error('no answer within 10 s')), 10_000) })])
      } catch (e) {
        last = e
      } finally {
        clearTimeout(timer)
      }
      if (performance.now() - started > this.outageMs) {
        throw new QueueError(`the job queue ${this.display} did not answer for ${Math.round(this.outageMs / 1000)} s (${what}: ${(last as Error)?.message ?? last}); the experiment's checkpoint and the jobs in Redis are kept: resume with --resume DIR --queue URL once it is back`)
      }
      await sleep(Math.min(1000, this.pollMs * 4))
    }
  }

  /**
   * Advances `t` (the trial under `key`) to `untilEpoch` on a worker, or here when there is nothing
   * to train (finished, released or already there: the local advance is then a no-op, or says why not).
   */
  async advance(key: string, t: Trial, untilEpoch: number, signal?: AbortSignal): Promise<void> {
    if (t.released || t.done || t.epochsRun >= untilEpoch) return t.advance(untilEpoch, signal)
    const before = t.history.map((h) => JSON.stringify(h))
    const { bytes: _b, ...snapshot } = encodeSnapshotBlob(t.snapshot())
    const job: TrialJob = {
      format: JOB_FORMAT, protocol: PROTOCOL, kanaNative: KANA_VERSION, key, config: t.config, threads: t.model.threads,
      untilEpoch, data: this.o.data, snapshot,
    }
    const id = jobIdOf(key, untilEpoch, job)
    const raw = await this.run(id, job, signal)
    let s
    try {
      const r = parseResult(raw)
      if (r.key !== key || r.untilEpoch !== untilEpoch) throw new PayloadError(`it is the result of trial ${r.key} to epoch ${r.untilEpoch}`)
      s = decodeSnapshotBlob(r.snapshot, t.layers, `the result of job ${id}`)
    } catch (e) {
      throw new QueueError(`job ${id} (trial ${key} to epoch ${untilEpoch}) returned an unusable result: ${(e as Error).message}`)
    }
    // the worker's run must continue the one sent: the same epochs so far, then up to untilEpoch
    const ok = s.history.length >= before.length && s.history.length <= untilEpoch && before.every((h, i) => JSON.stringify(s.history[i]) === h) && (s.stopReason !== null || s.history.length === untilEpoch)
    if (!ok) throw new QueueError(`job ${id} (trial ${key} to epoch ${untilEpoch}) returned a state that does not continue the trial's (${s.history.length} epochs for ${before.length} → ${untilEpoch})`)
    t.restore(s)
    // the trial's epoch hooks see the new epochs here, after the fact (logs, in order)
    for (const r of t.history.slice(before.length)) {
      await t.hooks.history?.(r, t)
      for (const hook of t.hooks.onEpoch ?? []) await hook(r, t)
    }
  }

  /** Sends (or attaches to) job `id` and waits for its result. */
  private async run(id: string, job: TrialJob, signal?: AbortSignal): Promise<unknown> {
    let resubmits = 0
    const submit = async () => {
      const state = await this.call(() => this.queue.getJobState(id), 'look up a job')
      if (state === 'failed') {
        // failed in an earlier session (bad data, another version, …): try again, it may be fixed
        await this.call(async () => { await (await this.queue.getJob(id))?.remove() }, 'remove a failed job')
      } else if (state !== 'unknown') {
        this.log(`trial ${job.key}: attached to job ${id} (${state})`)
        return
      }
      await this.call(() => this.queue.add('trial', job, { jobId: id, attempts: 1, removeOnComplete: KEEP, removeOnFail: KEEP }), 'add a job')
    }
    await submit()
    for (;;) {
      if (signal?.aborted) throw abortError(signal.reason) // the job runs on; a resumed coordinator attaches to it
      const state = await this.call(() => this.queue.getJobState(id), 'poll a job')
      let vanished = state === 'unknown'
      if (state === 'completed' || state === 'failed') {
        const j = await this.call(() => this.queue.getJob(id), 'fetch a result')
        if (j && state === 'failed') throw new QueueError(`trial ${job.key} (job ${id}) failed on its worker: ${j.failedReason}`)
        if (j && j.returnvalue != null) {
          await this.call(() => j.remove(), 'remove a finished job').catch(() => {})
          return j.returnvalue
        }
        vanished = true
      }
      if (vanished) {
        // gone: Redis restarted without its data, or someone removed it — the job is sent again
        if (++resubmits > MAX_RESUBMITS) throw new QueueError(`trial ${job.key}: job ${id} vanished from the queue ${resubmits - 1} times; is something emptying Redis?`)
        this.log(`trial ${job.key}: job ${id} is no longer in the queue (Redis restarted without its data?): sending it again`)
        await submit()
      }
      await sleep(this.pollMs)
    }
  }
}
