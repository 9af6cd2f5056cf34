// Structured logging: one line per event, `level component message key=value...`, to stderr.
// Keys named like secrets are redacted here so that no caller can log a key by accident.

export type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const SECRET_KEY = /(private.?key|secret|token|password|authorization)/i;

export type Fields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  child(component: string): Logger;
}

interface Sink {
  level: Level;
  json: boolean;
  write: (line: string) => void;
}

const sink: Sink = {
  level: (process.env.WEFT_LOG_LEVEL as Level | undefined) ?? 'info',
  json: process.env.WEFT_LOG_FORMAT === 'json',
  write: (line) => process.stderr.write(line + '\n'),
};

/** Process-wide logging settings; the composition root calls this once. */
export function configureLogging(opts: Partial<Sink>): void {
  Object.assign(sink, opts);
}

function render(value: unknown): string {
  if (value instanceof Error) return JSON.stringify(value.message);
  if (typeof value === 'string') return /[\s="]/.test(value) ? JSON.stringify(value) : value;
  return JSON.stringify(value) ?? 'undefined';
}

function redact(fields: Fields | undefined): Fields | undefined {
  if (!fields) return fields;
  let out: Fields | undefined;
  for (const k of Object.keys(fields)) {
    if (SECRET_KEY.test(k)) {
      out ??= { ...fields };
      out[k] = '[redacted]';
    }
  }
  return out ?? fields;
}

export function createLogger(component: string): Logger {
  const emit = (level: Level, msg: string, raw?: Fields) => {
    if (ORDER[level] < ORDER[sink.level]) return;
    const fields = redact(raw);
    if (sink.json) {
      sink.write(JSON.stringify({ time: new Date().toISOString(), level, component, msg, ...fields }));
      return;
    }
    let line = `${new Date().toISOString()} ${level.padEnd(5)} ${component}: ${msg}`;
    if (fields) for (const [k, v] of Object.entries(fields)) if (v !== undefined) line += ` ${k}=${render(v)}`;
    sink.write(line);
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (sub) => createLogger(`${component}/${sub}`),
  };
}
