/**
 * Register the service worker (sw.js beside index.html) so the built app starts offline.
 * Production builds only: under the Vite dev server it would cache dev modules. Relative URLs,
 * so the site works from any sub-path (Vite base './').
 */
export function registerServiceWorker(): void {
  if (!('serviceWorker' in navigator)) return;
  const register = () => {
    const base = new URL('./', document.baseURI);
    navigator.serviceWorker.register(new URL('sw.js', base).href, { scope: base.href }).catch((e: unknown) => {
      console.warn('Offline support unavailable: the service worker did not register.', e);
    });
  };
  // After the page's own loads, so installing (fetching the shell again) does not compete with them.
  if (document.readyState === 'complete') register();
  else addEventListener('load', register, { once: true });
}
