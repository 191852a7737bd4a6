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

/** A path as a POSIX shell word. */
export const shellWord = (s: string): string => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`)
