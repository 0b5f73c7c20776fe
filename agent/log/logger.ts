import { oneLine } from '../lib/errors.js';

/**
 * Structured logs, one event per line: `level=info event=state.changed from=connecting to=ready`.
 * Under systemd (JOURNAL_STREAM set) each line starts with a syslog priority prefix such as
 * `<6>`, so journald records the level without parsing. Recent lines are kept in memory for
 * the `getLogs` command.
 */
export const LEVELS = { debug: 7, info: 6, warn: 4, error: 3 } as const;
export type Level = keyof typeof LEVELS;
export type Fields = Record<string, unknown>;

/** Longest line the recent ring keeps (what getLogs returns of a line); the log output gets the whole line. */
export const MAX_KEPT_CHARS = 2048;

export interface LoggerOptions {
  level?: Level;
  write?: (line: string) => void;
  /** Prefix lines with `<priority>` for journald. Default: when JOURNAL_STREAM is set. */
  journal?: boolean;
  /** How many recent lines to keep for getLogs. */
  keep?: number;
  now?: () => Date;
}

export class Logger {
  private level: Level;
  private readonly write: (line: string) => void;
  private readonly journal: boolean;
  private readonly recentLines: string[] = [];
  private readonly keep: number;
  private readonly now: () => Date;

  constructor(
    options: LoggerOptions = {},
    private readonly context: Fields = {},
    private readonly parent?: Logger,
  ) {
    this.level = options.level ?? 'info';
    this.write = options.write ?? ((line) => process.stderr.write(line));
    this.journal = options.journal ?? Boolean(process.env.JOURNAL_STREAM);
    this.keep = options.keep ?? 1000;
    this.now = options.now ?? (() => new Date());
  }

  /** A logger that adds `fields` to every event, sharing level, output and memory. */
  child(fields: Fields): Logger {
    const root = this.root();
    return new Logger({}, { ...this.context, ...fields }, root);
  }

  setLevel(level: Level): void {
    this.root().level = level;
  }

  currentLevel(): Level {
    return this.root().level;
  }

  debug(event: string, fields?: Fields): void { this.log('debug', event, fields); }
  info(event: string, fields?: Fields): void { this.log('info', event, fields); }
  warn(event: string, fields?: Fields): void { this.log('warn', event, fields); }
  error(event: string, fields?: Fields): void { this.log('error', event, fields); }

  /** The last `count` lines, oldest first. */
  recent(count: number): string[] {
    const lines = this.root().recentLines;
    return lines.slice(Math.max(0, lines.length - count));
  }

  private log(level: Level, event: string, fields: Fields = {}): void {
    const root = this.root();
    if (LEVELS[level] > LEVELS[root.level]) return;
    const line = formatLine({ time: root.now().toISOString(), level, event, ...this.context, ...fields });
    // The ring keeps what getLogs can return of a line: its memory is bounded by lines and bytes.
    root.recentLines.push(clipChars(line, MAX_KEPT_CHARS));
    if (root.recentLines.length > root.keep) root.recentLines.splice(0, root.recentLines.length - root.keep);
    root.write(`${root.journal ? `<${LEVELS[level]}>` : ''}${line}\n`);
  }

  private root(): Logger {
    return this.parent ?? this;
  }
}

/** At most `max` characters, never cutting a character in two (a lone surrogate would grow to six bytes in JSON). */
function clipChars(line: string, max: number): string {
  if (line.length <= max) return line;
  let end = max;
  const last = line.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return `${line.slice(0, end)}...`;
}

/** logfmt: key=value, quoting values with spaces, quotes or '='; errors become their message chain and hint. */
export function formatLine(fields: Fields): string {
  const parts: string[] = [];
  for (const [key, raw] of Object.entries(fields)) {
    if (raw === undefined) continue;
    parts.push(`${key}=${formatValue(raw)}`);
  }
  return parts.join(' ');
}

function formatValue(value: unknown): string {
  let text: string;
  if (value instanceof Error) text = oneLine(value);
  else if (typeof value === 'string') text = value;
  else if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint' || value === null) text = String(value);
  else text = jsonOrString(value);
  text = text.replace(/[\r\n]+/g, ' ');
  return text === '' || /[\s"=\\]/.test(text) ? JSON.stringify(text) : text;
}

/** Logging never throws: a value JSON cannot write (a cycle, a bigint inside) is written as String writes it. */
function jsonOrString(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
