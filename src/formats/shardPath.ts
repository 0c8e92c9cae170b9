/**
 * Where a model's files may come from. A tensor cache, an adapter.json or a manifest names its
 * files, and whoever edits it (MLC's caches carry no sha256) would otherwise decide the origin of
 * every shard: an absolute URL, a `//host/` path or `../` climbing out of the model's folder. So
 * a file is named by a plain relative name (segments of letters, digits, `.`, `_`, `-`; no `.` or
 * `..` segment) resolved under the manifest's base, and an absolute `url` is allowed only on the
 * base's own origin. Checked when the file is parsed, before anything is fetched.
 */

const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;

/** Null when `name` is a plain relative file name, else why not (for an error message). */
export function plainFileNameProblem(name: unknown): string | null {
  if (typeof name !== 'string' || name === '') return 'it is empty';
  if (/^[a-z][a-z0-9+.-]*:/i.test(name) || name.startsWith('//')) return 'it is a URL; only a file name under the model folder is allowed';
  if (name.startsWith('/')) return 'it is an absolute path; only a file name under the model folder is allowed';
  const segments = name.split('/');
  if (segments.some((s) => s === '..')) return 'it climbs out of the model folder with ../';
  if (!segments.every((s) => SEGMENT.test(s))) return 'only letters, digits, ".", "_", "-" and "/" between names are allowed';
  return null;
}

/** A value as it appears in an error: JSON, cut to 60 characters. */
export function quoteName(x: unknown): string {
  return JSON.stringify(typeof x === 'string' && x.length > 60 ? x.slice(0, 57) + '...' : x) ?? String(x);
}

/**
 * Null when a file's explicit `url` may be fetched for a manifest whose base is `baseUrl`: a plain
 * relative name, or an absolute http(s) URL on the base's own origin (a base that is itself
 * page-relative only admits relative names). Else why not.
 */
export function fileUrlProblem(url: string, baseUrl: string | undefined): string | null {
  const absolute = /^[a-z][a-z0-9+.-]*:/i.test(url) || url.startsWith('//');
  if (!absolute) return plainFileNameProblem(url);
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    return 'it is not a URL';
  }
  if (target.protocol !== 'https:' && target.protocol !== 'http:') return `its scheme ${target.protocol} is not http(s)`;
  const base = absoluteUrlOrNull(baseUrl);
  if (!base || base.origin !== target.origin)
    return `it is on ${target.origin}, not on the manifest's own origin${base ? ` (${base.origin})` : ''}: a manifest may not send downloads elsewhere`;
  return null;
}

function absoluteUrlOrNull(url: string | undefined): URL | null {
  if (url === undefined) return null;
  try {
    return new URL(url);
  } catch {
    return null;
  }
}
