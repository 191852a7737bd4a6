// Small helpers the CLI commands share: which options were typed, how to print a path, and the
// model-setting flags generated from the schema.
import type { Argv, Options } from 'yargs'
import { FIELDS, type FieldSpec, type ModelConfig } from '../training/config'

const SHORT: Record<string, string> = { '-o': 'out', '-c': 'config', '-q': 'quiet' }

/** Long option names typed on the command line (kebab-case, `--no-` stripped): what --resume checks. */
export function explicitOptions(args: string[]): Set<string> {
  const names = new Set<string>()
  for (const a of args) {
    if (a === '--') break
    if (SHORT[a]) names.add(SHORT[a])
    if (!a.startsWith('--')) continue
    const name = a.slice(2).split('=')[0].replace(/^no-/, '').replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)
    names.add(name)
  }
  return names
}

/** The object without its undefined entries (what was not given). */
export const defined = <T extends Record<string, unknown>>(o: T): Partial<T> => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>

/**
 * A word the user's shell reads back as `s`, for commands printed to copy (the resume command).
 * POSIX shells: single quotes. Windows (cmd.exe and PowerShell both): double quotes, and a path's
 * backslashes and drive colon need none; a `"` inside is doubled, which both accept.
 */
export function shellWord(s: string, platform: NodeJS.Platform = process.platform): string {
  if (platform === 'win32') return /^[\w@%+=:,./\\-]+$/.test(s) ? s : `"${s.replace(/"/g, '""')}"`
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`
}

/**
 * The signals that ask a run to stop and checkpoint. Windows delivers Ctrl-C as SIGINT and
 * Ctrl-Break as SIGBREAK; it never delivers SIGTERM (a kill there ends the process outright, which
 * the between-epoch autosave covers), but listening for it is harmless.
 */
export function interruptSignals(platform: NodeJS.Platform = process.platform): NodeJS.Signals[] {
  return platform === 'win32' ? ['SIGINT', 'SIGTERM', 'SIGBREAK'] : ['SIGINT', 'SIGTERM']
}

// ---------------------------------------------------------------------------------------------
// Model-setting flags, generated from the one schema (training/config.ts FIELDS): a new field
// there is a new flag here, with its type, choices, help and shown default.


const kebab = (k: string) => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)
const camel = (f: string) => f.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase())

/** The model settings' declarations (the schema's FIELDS; tests pass more to see a new field's flag appear). */
export type Fields = Record<string, FieldSpec>
const ALL = FIELDS as unknown as Fields

/** The flag of a model setting (without `--`), or undefined when it has none. */
export const flagOf = (k: string, fields: Fields = ALL): string | undefined => {
  const f = fields[k].flag
  return f === false ? undefined : f ?? kebab(k)
}

/** The default as --help and the README show it. */
export function defaultShown(k: string, fields: Fields = ALL): string | undefined {
  const f = fields[k]
  if (f.defaultText !== undefined) return f.defaultText
  if (f.default === undefined || typeof f.default === 'function') return undefined
  if (typeof f.default === 'boolean') return f.default ? 'on' : 'off'
  if (typeof f.default === 'number') return f.default !== 0 && Math.abs(f.default) < 0.01 ? f.default.toExponential() : String(f.default)
  return Array.isArray(f.default) ? f.default.join(',') : String(f.default)
}

/** How yargs sees a setting: its type or choices, from the zod schema. */
export function flagKind(k: string, fields: Fields = ALL): { type: 'number' | 'boolean' | 'string' } | { choices: string[] } {
  const f = fields[k]
  if (f.fromFlag) return { type: 'string' }
  let def = (f.schema as any)._zod.def
  while (def.type === 'optional' || def.type === 'nullable') def = def.innerType._zod.def // a setting that may stay unset, e.g. a clip norm
  if (def.type === 'enum') return { choices: Object.values(def.entries as Record<string, string>) }
  if (def.type === 'boolean') return { type: 'boolean' }
  if (def.type === 'number') return { type: 'number' }
  return { type: 'string' }
}

/** The yargs option of setting `k`, under its own flag or another name (e.g. experiment's --m0-epochs). */
export function fieldOption(k: string, describe?: string, fields: Fields = ALL): Options {
  const f = fields[k]
  const kind = flagKind(k, fields)
  const shown = defaultShown(k, fields)
  const doc = /^[a-z]/.test(f.doc) ? f.doc.charAt(0).toUpperCase() + f.doc.slice(1) : f.doc
  const off = 'type' in kind && kind.type === 'boolean' && f.default === true ? ` (--no-${flagOf(k, fields)} to turn off)` : ''
  // No yargs default: an absent flag stays undefined, so the schema's default applies (also the
  // dependent ones), a --config file is not overridden, and --resume sees only what was typed.
  return { ...kind, describe: describe ?? `${doc}${off}`, ...(describe === undefined && shown !== undefined ? { defaultDescription: shown } : {}) }
}

/** Every model-setting flag, in the schema's order. */
export function modelOptions<T>(y: Argv<T>, fields: Fields = ALL): Argv<T> {
  for (const k of Object.keys(fields)) {
    const flag = flagOf(k, fields)
    if (flag !== undefined) y = y.option(flag, fieldOption(k, undefined, fields))
  }
  return y
}

/** The value of setting `k` typed as `--flag` (argv key), parsed as the schema's field parses flags. */
export function fieldFromArgv(argv: Record<string, any>, k: string, flag = flagOf(k), usage: (m: string) => Error = (m) => new Error(m), fields: Fields = ALL): unknown {
  if (flag === undefined) return undefined
  const v = argv[camel(flag)]
  if (v === undefined) return undefined
  const parse = fields[k].fromFlag
  if (!parse) return v
  try {
    return parse(String(v))
  } catch (e) {
    throw usage(`--${flag} ${(e as Error).message}`)
  }
}

/** The model settings typed on the command line (absent ones left out), not yet range-checked. */
export function modelSettingsFrom(argv: Record<string, any>, usage?: (m: string) => Error, fields: Fields = ALL): Partial<ModelConfig> {
  const out: Record<string, unknown> = {}
  for (const k of Object.keys(fields)) {
    const v = fieldFromArgv(argv, k, flagOf(k, fields), usage, fields)
    if (v !== undefined) out[k] = v
  }
  return out as Partial<ModelConfig>
}
