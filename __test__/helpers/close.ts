// Numeric comparisons with a tolerance that say what differed.
import type { ExecutionContext } from 'ava'

export function close(t: ExecutionContext, actual: number, expected: number, tol: number, what: string): void {
  t.true(Math.abs(actual - expected) <= tol, `${what}: got ${actual}, expected ${expected} (tol ${tol})`)
}

export function closeArray(t: ExecutionContext, actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  t.is(actual.length, expected.length, `${what}: length`)
  for (let i = 0; i < expected.length; i++) close(t, actual[i], expected[i], tol, `${what}[${i}]`)
}
