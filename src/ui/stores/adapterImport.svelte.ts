/**
 * Bring your own adapter: a dropped or picked PEFT adapter (adapter_config.json +
 * adapter_model.safetensors, or adapter_model.bin read without running pickled code) is checked against a base model, converted in the page
 * (convertPeftAdapter in src/formats, the same code as `npm run convert-adapter`), stored in
 * IndexedDB under its own manifest id, and so listed in the picker beside the published adapters
 * for that base (the choices derive from the models list this refreshes).
 */
import { convertPeftAdapter } from '../../formats/adapterConversion.ts';
import { httpModelSource, readBaseModelJson } from '../../formats/modelFiles.ts';
import { PEFT_CONFIG_FILE, PEFT_PICKLED_WEIGHTS_FILE, PEFT_WEIGHTS_FILE } from '../../formats/peftAdapter.ts';
import type { ModelSource } from '../../formats/tensorCacheTypes.ts';
import type { ModelLocation } from '../../engine/protocol.ts';
import {
  convertedAdapterId,
  deleteModel,
  formatBytes,
  idbModelSource,
  storeConvertedAdapter,
  type ModelManifest,
  type ModelStatus,
} from '../../storage/index.ts';
import { fetchPeftFromHub } from '../../storage/hubAdapter.ts';
import { models } from './models.svelte.ts';

/** A picked or dropped file with its path inside the drop ("my-lora/adapter_config.json"). */
export type PickedFile = { file: File; path: string };

/** The base an adapter is checked against: its manifest id, name and where its files are read. */
export interface AdapterBase {
  id: string;
  name: string;
  location: ModelLocation;
}

/** The reader of a model's files wherever they are (IndexedDB, or the site). */
export function sourceAt(location: ModelLocation): ModelSource {
  return location.kind === 'idb' ? idbModelSource(location.modelId) : httpModelSource(location.baseUrl);
}

/**
 * The one PEFT adapter in a drop: its config and weights, and the folder they came in (the default
 * name). @throws Error saying what is missing or why the drop holds more than one adapter
 */
export function peftFilesIn(files: readonly PickedFile[]): {
  config: File;
  weights: File;
  weightsFile: typeof PEFT_WEIGHTS_FILE | typeof PEFT_PICKLED_WEIGHTS_FILE;
  folder: string | null;
} {
  const byName = (n: string) => files.filter((f) => f.path.split('/').pop() === n);
  const configs = byName(PEFT_CONFIG_FILE);
  // safetensors when the drop has it, else the pickled adapter_model.bin.
  const safetensors = byName(PEFT_WEIGHTS_FILE);
  const pickled = byName(PEFT_PICKLED_WEIGHTS_FILE);
  const [weights, weightsFile] = safetensors.length > 0 ? ([safetensors, PEFT_WEIGHTS_FILE] as const) : ([pickled, PEFT_PICKLED_WEIGHTS_FILE] as const);
  if (configs.length > 1 || weights.length > 1)
    throw new Error(`The drop holds ${Math.max(configs.length, weights.length)} adapters; drop one adapter folder at a time.`);
  const missing = [configs.length ? null : PEFT_CONFIG_FILE, weights.length ? null : PEFT_WEIGHTS_FILE].filter((x) => x !== null);
  if (missing.length > 0) throw new Error(`A PEFT adapter needs ${PEFT_CONFIG_FILE} and ${PEFT_WEIGHTS_FILE}; missing: ${missing.join(' and ')}.`);
  const parts = configs[0].path.split('/');
  return { config: configs[0].file, weights: weights[0].file, weightsFile, folder: parts.length > 1 ? parts[parts.length - 2] : null };
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

class AdapterImportStore {
  /** The latest import or removal, for the base it was made against. */
  status = $state<{ baseId: string; state: 'working' | 'done' | 'error'; message: string } | null>(null);

  /** The adapters listed for a base: published ones (the catalog, imported manifests) and those the user converted here. */
  listsFor(baseId: string): { published: ModelStatus[]; yours: ModelStatus[] } {
    const forBase = models.adapters.filter((m) => m.manifest.adapter?.baseModel === baseId);
    // Storage names what it converted "user-adapter-<slug>" (convertedAdapterId).
    const isYours = (m: ModelStatus) => m.id.startsWith('user-adapter-');
    return { published: forBase.filter((m) => !isYours(m)), yours: forBase.filter(isYours) };
  }

  private say(baseId: string, state: 'working' | 'done' | 'error', text: string) {
    this.status = { baseId, state, message: text };
  }

  /**
   * Convert the PEFT adapter in `files` against `base`, store it and list it; `name` ("" to name it
   * after its folder). Resolves with the stored manifest, or null when it failed (status says why).
   */
  async importPeft(files: readonly PickedFile[], base: AdapterBase | null, name: string): Promise<ModelManifest | null> {
    const baseId = base?.id ?? '';
    this.say(baseId, 'working', 'Checking the adapter…');
    try {
      if (!base) throw new Error('Choose a base model first: the adapter is checked against it.');
      const peft = peftFilesIn(files);
      const source = sourceAt(base.location);
      const { chatConfig: chat, tensorCache: cache } = await readBaseModelJson(source, `the base model ${base.name} (pick a converted base model)`);
      const adapterName = name.trim() || peft.folder || peft.config.name.replace(/\.json$/, '');
      this.say(baseId, 'working', 'Converting…');
      const converted = await convertPeftAdapter({
        adapterConfig: await peft.config.text(),
        adapterWeights: new Uint8Array(await peft.weights.arrayBuffer()),
        adapterWeightsFile: peft.weightsFile,
        baseChatConfig: chat,
        baseTensorCache: cache,
        name: adapterName,
      });
      this.say(baseId, 'working', 'Storing…');
      const manifest = await storeConvertedAdapter(convertedAdapterId(`${adapterName}-${base.id}`), converted.manifest, converted.shards, {
        baseModel: base.id,
        name: `${adapterName} (${converted.manifest.kind}, yours)`,
      });
      const bytes = [...converted.shards.values()].reduce((a, b) => a + b.byteLength, 0);
      // Registers the choice: the picker's list derives from the models list.
      await models.refresh();
      this.say(
        baseId,
        'done',
        `Stored ${manifest.name}: ${converted.manifest.kind} on ${converted.manifest.targets.join(', ')}, ${formatBytes(bytes)}, checked against ${base.name}.`,
      );
      return manifest;
    } catch (e) {
      this.say(baseId, 'error', message(e));
      return null;
    }
  }

  /**
   * Read the PEFT adapter published on the Hugging Face hub as `repo` (src/storage/hubAdapter.ts),
   * then convert, store and list it exactly as a dropped folder (importPeft); `name` ("" to name it
   * after the repository). Resolves with the stored manifest, or null when it failed (status says why).
   */
  async importFromHub(repo: string, base: AdapterBase | null, name: string): Promise<ModelManifest | null> {
    const baseId = base?.id ?? '';
    try {
      if (!base) throw new Error('Choose a base model first: the adapter is checked against it.');
      const files = await fetchPeftFromHub(repo, { onStatus: (text) => this.say(baseId, 'working', text) });
      return await this.importPeft(files, base, name);
    } catch (e) {
      this.say(baseId, 'error', message(e));
      return null;
    }
  }

  /** Delete an adapter the user stored. */
  async remove(id: string, baseId: string) {
    try {
      await deleteModel(id, true);
    } catch (e) {
      this.say(baseId, 'error', message(e));
    }
    await models.refresh();
  }
}

export const adapterImport = new AdapterImportStore();
