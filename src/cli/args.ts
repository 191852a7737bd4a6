// Small helpers the CLI commands share: which options were typed, and how to print a path.

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
