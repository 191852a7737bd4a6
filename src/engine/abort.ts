// The error an aborted call rejects with, the same whether it stopped before or during the work.
// Apart from mlp.ts so that the training loop (run.ts) can make one without loading the native
// binding: a worker thread running the reference never touches the engine.

export function abortError(reason?: unknown): Error {
  const err = new Error('the operation was aborted', { cause: reason })
  err.name = 'AbortError'
  ;(err as NodeJS.ErrnoException).code = 'ABORT_ERR'
  return err
}
