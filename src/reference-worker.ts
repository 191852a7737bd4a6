// Worker-thread entry of the M2 reference run (see reference-trial.ts): trains, reports each epoch,
// then waits for the test split, evaluates it once and replies — or, stopped through the shared
// flag, sends its state instead.
import { parentPort, workerData } from 'node:worker_threads'
import { runReference, type ReferenceJob, type ReferenceState } from './reference-trial'
import type { ReferenceMLP } from './reference'

const port = parentPort!
let model: ReferenceMLP | undefined
const { job, resume, stop } = workerData as { job: ReferenceJob; resume?: ReferenceState; stop: Int32Array }
try {
  const r = runReference(job, (record) => port.postMessage({ type: 'epoch', record }), { stop, resume })
  if (r.state) port.postMessage({ type: 'interrupted', state: r.state })
  else {
    model = r.model
    port.postMessage({ type: 'done', outcome: r.outcome })
  }
} catch (e) {
  port.postMessage({ type: 'error', error: (e as Error).stack ?? String(e) })
}
port.on('message', (m: { type: string; images: Uint8Array; labels: Int32Array }) => {
  if (m.type !== 'test' || !model) return
  try {
    const ev = model.evaluate(m.images, m.labels, m.labels.length)
    port.postMessage({ type: 'test', test: { loss: ev.loss, accuracy: ev.accuracy, confusion: [...ev.confusion] } })
  } catch (e) {
    port.postMessage({ type: 'error', error: (e as Error).stack ?? String(e) })
  }
})
