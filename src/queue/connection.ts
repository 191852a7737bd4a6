// Where the job queue lives: a Redis URL, redis://[user:password@]host:port[/db] or rediss:// for
// TLS, turned into ioredis options. A password never leaves this file in text meant for people:
// every URL shown, logged or recorded goes through redactUrl/redactSecrets.
import type { RedisOptions } from 'bullmq'

/**
 * BullMQ, loaded when a queue is used. It is an optional peer dependency: the package installs
 * without it (and without the native install script of its msgpackr-extract), so a student's
 * `npm install kana-native` stays free of anything a job queue needs; `--queue` and `worker` say
 * what to install.
 */
export async function loadBullmq(): Promise<typeof import('bullmq')> {
  try {
    return await import('bullmq')
  } catch (e) {
    if ((e as NodeJS.ErrnoException)?.code !== 'ERR_MODULE_NOT_FOUND' && (e as NodeJS.ErrnoException)?.code !== 'MODULE_NOT_FOUND') throw e
    throw new Error('the job queue needs BullMQ, an optional dependency of kana-native: npm install bullmq ioredis')
  }
}

/** The BullMQ queue every kana-native coordinator and worker use. */
export const QUEUE_NAME = 'kana-native-trials'
/** Key prefix in Redis (BullMQ's default is "bull"). */
export const QUEUE_PREFIX = 'kana-native'
/** A password for the URL that has none, so that it need not appear on a command line (visible in `ps`). */
export const PASSWORD_ENV = 'KANA_NATIVE_REDIS_PASSWORD'

export interface QueueConnection {
  /** The URL without its credentials, for messages. */
  display: string
  options: RedisOptions
}

/** `s` with the user:password@ of every redis:// or rediss:// URL in it replaced by ***@. */
export const redactSecrets = (s: string): string => s.replace(/(rediss?:\/\/)[^@\s/]*@/gi, '$1***@')

export function redactUrl(url: string): string {
  return redactSecrets(url)
}

/** Parses a queue URL; RangeError naming what is wrong (never echoing a password). */
export function parseQueueUrl(url: string, env: NodeJS.ProcessEnv = process.env): QueueConnection {
  const shown = redactSecrets(url)
  let u: URL
  try {
    u = new URL(url)
  } catch {
    throw new RangeError(`--queue must be a URL redis://[user:password@]host:port[/db] or rediss://… (TLS), got "${shown}"`)
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new RangeError(`--queue must be a redis:// or rediss:// URL, got "${shown}"`)
  if (!u.hostname) throw new RangeError(`--queue names no host: "${shown}"`)
  const port = u.port === '' ? 6379 : Number(u.port)
  if (!(Number.isInteger(port) && port >= 1 && port <= 65535)) throw new RangeError(`--queue has a bad port in "${shown}"`)
  const path = u.pathname.replace(/^\//, '')
  if (path !== '' && !/^\d{1,4}$/.test(path)) throw new RangeError(`--queue: the path must be a database number (/0, /1, …), got "/${path}" in "${shown}"`)
  if (u.search || u.hash) throw new RangeError(`--queue takes no query or fragment: "${shown}"`)
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1')
  const password = u.password ? decodeURIComponent(u.password) : env[PASSWORD_ENV] || undefined
  const options: RedisOptions = {
    host,
    port,
    db: path === '' ? 0 : Number(path),
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password,
    // BullMQ's workers block on Redis; it requires this (commands wait for a reconnection)
    maxRetriesPerRequest: null,
    // a restarted Redis is reconnected to, at most 2 s apart
    retryStrategy: (times: number) => Math.min(200 * times, 2000),
    ...(u.protocol === 'rediss:' ? { tls: { servername: host } } : {}),
  }
  const display = `${u.protocol}//${u.username || password ? '***@' : ''}${u.host}/${options.db}`
  return { display, options }
}
