// Worker-thread entry of the M2 reference run (see reference-trial.ts): trains, reports each epoch,
// then waits for the test split, evaluates it once and replies — or, stopped through the shared
// flag, sends its state instead. With kind 'resync' it runs the re-synchronised epochs instead.
import { parentPort, workerData } from 'node:worker_threads'
import { runReference, runResync, type ReferenceJob, type ReferenceState, type ResyncJob } from './reference-trial'
import type { ReferenceMLP } from '../engine/reference'

const port = parentPort!
let model: ReferenceMLP | undefined
const data = workerData as { kind: 'reference'; job: ReferenceJob; resume?: ReferenceState; stop: Int32Array } | { kind: 'resync'; job: ResyncJob; stop: Int32Array }
const fail = (e: unknown) => port.postMessage({ type: 'error', error: (e as Error).stack ?? String(e) })
if (data.kind === 'resync') {
  runResync(data.job, (record) => port.postMessage({ type: 'resync-epoch', record }), data.stop).then(() => port.postMessage({ type: 'resync-done' }), fail)
} else {
  runReference(data.job, (record) => port.postMessage({ type: 'epoch', record }), { stop: data.stop, resume: data.resume }).then((r) => {
    if (r.state) port.postMessage({ type: 'interrupted', state: r.state })
    else {
      model = r.model
      port.postMessage({ type: 'done', outcome: r.outcome })
    }
  }, fail)
  port.on('message', (m: { type: string; images: Uint8Array; labels: Int32Array }) => {
    if (m.type !== 'test' || !model) return
    try {
      const ev = model.evaluate(m.images, m.labels, m.labels.length)
      port.postMessage({ type: 'test', test: { loss: ev.loss, accuracy: ev.accuracy, confusion: [...ev.confusion] } })
    } catch (e) {
      fail(e)
    }
  })
}
