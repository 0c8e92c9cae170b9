// Node module hooks for the CLIs that run the engine in Node (Dawn's bindings): `import x from
// './k.wgsl?raw'` gives the file's text, as Vite does in the browser build.
import { readFile } from 'node:fs/promises';

export async function load(url, context, nextLoad) {
  const u = new URL(url);
  if (u.protocol === 'file:' && u.pathname.endsWith('.wgsl')) {
    const text = await readFile(u, 'utf8');
    return { format: 'module', source: `export default ${JSON.stringify(text)};`, shortCircuit: true };
  }
  return nextLoad(url, context);
}
