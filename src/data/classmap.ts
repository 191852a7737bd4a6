/**
 * Kuzushiji class maps: the official `*_classmap.csv` files (`index,codepoint,char`, one header
 * line) that say which character each class index stands for. Checked strictly, because a
 * shifted or missing row silently relabels every prediction after it.
 */
import { promises as fsp } from 'node:fs';
import { DataError } from './readers';

/**
 * Why `name` cannot be a class name, or undefined. Class names are printed to terminals (evaluate's
 * table) and drawn in pictures: control characters (C0, DEL, C1: an escape sequence rewrites the
 * terminal), line and paragraph separators and bidirectional overrides (which reorder the text
 * around them) are refused wherever names are loaded — class maps and model files.
 */
export function classNameProblem(name: string): string | undefined {
  const m = /[\p{Cc}\u2028\u2029\u202A-\u202E\u2066-\u2069]/u.exec(name);
  if (!m) return undefined;
  const cp = m[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
  return `holds the control character U+${cp}: class names must be printable text`;
}

/** Parse classmap CSV text into class names (the characters) indexed by class. */
export function parseClassmap(text: string, file = 'classmap'): string[] {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const header = lines[0]?.trim();
  if (header !== 'index,codepoint,char') {
    throw new DataError('ECLASSMAP', `header line is ${JSON.stringify(header)}, expected "index,codepoint,char"`, file);
  }
  const names: string[] = [];
  for (let ln = 1; ln < lines.length; ln++) {
    const line = lines[ln];
    if (line.trim() === '') continue;
    const where = `line ${ln + 1} (${JSON.stringify(line.length > 120 ? `${line.slice(0, 120)}…` : line)})`;
    // The character comes last and could itself be a comma, so split only twice.
    const m = /^\s*(\d+)\s*,\s*U\+([0-9A-Fa-f]{4,6})\s*,(.*)$/.exec(line);
    if (!m) throw new DataError('ECLASSMAP', `${where} is not "index,U+XXXX,char"`, file);
    const index = Number(m[1]);
    const cp = parseInt(m[2], 16);
    if (!Number.isSafeInteger(index) || index > 1_000_000) throw new DataError('ECLASSMAP', `${where}: index ${m[1]} is implausibly large`, file);
    if (cp > 0x10ffff) throw new DataError('ECLASSMAP', `${where}: U+${m[2]} is not a Unicode code point`, file);
    const char = m[3].trim();
    const problem = classNameProblem(String.fromCodePoint(cp));
    if (problem) throw new DataError('ECLASSMAP', `line ${ln + 1}: the class name for U+${m[2].toUpperCase()} ${problem}`, file);
    if (char !== String.fromCodePoint(cp)) {
      throw new DataError('ECLASSMAP', `${where}: character ${JSON.stringify(char)} does not match code point U+${m[2].toUpperCase()} (${String.fromCodePoint(cp)})`, file);
    }
    if (names[index] !== undefined) throw new DataError('ECLASSMAP', `${where}: duplicate class index ${index}`, file);
    names[index] = char;
  }
  if (names.length === 0) throw new DataError('ECLASSMAP', 'no classes listed', file);
  for (let i = 0; i < names.length; i++) {
    if (names[i] === undefined) throw new DataError('ECLASSMAP', `class index ${i} is missing (indices must run 0..${names.length - 1} without gaps)`, file);
  }
  return names;
}

/** Read and parse a classmap CSV file. */
export async function loadClassmap(path: string): Promise<string[]> {
  let text: string;
  try {
    text = await fsp.readFile(path, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') throw new DataError('ENOENT', 'no such file', path);
    throw new DataError(err.code ?? 'EIO', `cannot read file (${err.message})`, path);
  }
  return parseClassmap(text, path);
}
