/**
 * A share link is state, not instructions: what it names on another site (a data URL, an adapter
 * folder) is fetched only after the user has seen what and from where, and said yes. This module
 * says which URLs need that (plain functions, unit-tested in Node); the stores hold the answers.
 */

/** The origin of `url` when it is not the page's own (it then needs the user's yes), else null. */
export function foreignOrigin(url: string, pageOrigin: string, base = pageOrigin + '/'): string | null {
  try {
    const u = new URL(url, base);
    return u.origin === pageOrigin ? null : u.origin;
  } catch {
    return null;
  }
}

/** For an adapter id "url:<folder>" on another origin: that folder URL and origin; else null. */
export function foreignAdapterFolder(id: string, pageOrigin: string): { url: string; origin: string } | null {
  if (!id.startsWith('url:')) return null;
  const url = id.slice('url:'.length);
  const origin = foreignOrigin(url, pageOrigin);
  return origin ? { url, origin } : null;
}
