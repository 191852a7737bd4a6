// The `worker` command: trains trial jobs from a queue (src/queue/worker.ts) until Ctrl-C/SIGTERM,
// which stops each running trial between two mini-batches and puts it back on the queue with its
// state, for another worker. Exit code 0 after a stop.
import type { Argv } from 'yargs'
import { startWorker } from '../queue/worker'
import { PASSWORD_ENV } from '../queue/connection'
import { interruptSignals } from './args'

type Out = { json: boolean; quiet: boolean; plain: boolean }

export const workerOptions = (y: Argv) =>
  y
    .option('queue', { type: 'string', demandOption: true, describe: `The queue: redis://[user:password@]host:port[/db] or rediss:// (TLS); the password may come from $${PASSWORD_ENV} instead (a command line is visible to other users)` })
    .option('concurrency', { type: 'number', default: 1, describe: 'Jobs (trials) trained side by side' })
    .option('threads', { type: 'number', describe: 'Engine threads of every job [default: the job\'s, as the experiment configured it: what bit-identity is promised for]' })
    .option('cache-dir', { type: 'string', describe: 'Cache for named data sets [default: $KANA_NATIVE_CACHE or ~/.cache/kana-native]' })
    .option('lock-seconds', { type: 'number', default: 30, describe: 'Seconds a job stays locked without a sign of life: how soon the job of a killed worker is taken up again' })
    .option('snapshot-every', { type: 'number', default: 60, describe: 'Store a running trial\'s state into its job after an epoch when this many seconds passed (0: every epoch), so that a killed worker loses at most that' })

export async function workerCommand(argv: Record<string, any>, out: Out, usage: (m: string) => Error): Promise<number> {
  const say = (line: string) => {
    if (out.json) process.stdout.write(JSON.stringify({ type: 'log', message: line }) + '\n')
    else if (!out.quiet) process.stderr.write(line + '\n')
  }
  let w
  try {
    w = await startWorker({ queue: String(argv.queue), concurrency: argv.concurrency, threads: argv.threads, cacheDir: argv.cacheDir, lockSeconds: argv.lockSeconds, snapshotEvery: argv.snapshotEvery, log: say })
  } catch (e) {
    if (e instanceof RangeError) throw usage(e.message)
    throw e
  }
  const worker = w
  const onSignal = () => {
    say('interrupt: stopping the running trials after their current batch and putting them back on the queue with their state')
    void worker.stop()
  }
  for (const sig of interruptSignals()) process.once(sig, onSignal)
  try {
    await worker.closed
    say(`worker ${worker.name}: stopped`)
    return 0
  } finally {
    for (const sig of interruptSignals()) process.off(sig, onSignal)
  }
}
