import { describe, expect, it } from 'vitest';
import { describeError } from '../../src/ui/errors.ts';
import * as storageErrors from '../../src/storage/errors.ts';
import * as engineErrors from '../../src/engine/errors.ts';
import { EngineWorkerError } from '../../src/engine/client.ts';
import { WebLLMUnavailableError } from '../../src/engine/webllm.ts';
import { ManifestError, AdapterMismatchError } from '../../src/formats/manifest.ts';
import { AdapterError } from '../../src/formats/adapterFormat.ts';
import { SafetensorsError } from '../../src/formats/safetensors.ts';
import { TensorCacheError } from '../../src/formats/tensorCache.ts';
import { MlcChatConfigError } from '../../src/formats/mlcChatConfig.ts';
import { ModelFilesError } from '../../src/formats/modelFiles.ts';
import { DatasetParseError } from '../../src/reasoning/datasets.ts';
import { DatasetDownloadError } from '../../src/reasoning/datasetStore.ts';
import { ScoreError } from '../../src/reasoning/score.ts';
import { RunCancelled } from '../../src/reasoning/runner.ts';
import { TorchPickleError } from '../../src/formats/torchPickle.ts';
import { ShardSpecError } from '../../src/reasoning/runRecord.ts';
import { MergeError } from '../../src/reasoning/mergeResults.ts';
import { TrainingDataError } from '../../src/training/data.ts';
import { CheckpointError } from '../../src/cli/hfCheckpoint.ts';

type ErrorClass = new (...args: never[]) => Error;

/** The error classes a module exports. */
function errorClassesIn(mod: Record<string, unknown>): ErrorClass[] {
  return Object.values(mod).filter((v): v is ErrorClass => typeof v === 'function' && v.prototype instanceof Error);
}

/** Every error class the app's layers export (the storage and engine modules' classes found by walking their exports). */
const classes: ErrorClass[] = [
  ...errorClassesIn(storageErrors),
  ...errorClassesIn(engineErrors),
  WebLLMUnavailableError,
  ManifestError,
  AdapterMismatchError,
  AdapterError,
  SafetensorsError,
  TensorCacheError,
  MlcChatConfigError,
  ModelFilesError,
  DatasetParseError,
  DatasetDownloadError,
  ScoreError,
  RunCancelled,
  TorchPickleError,
  ShardSpecError,
  MergeError,
  TrainingDataError,
  CheckpointError,
];

/** An instance whatever the constructor takes (strings, numbers, lists: each class's messages only format them). */
function instance(C: ErrorClass): Error {
  return Reflect.construct(C, ['the thing', ['a problem'], 'another thing', 3]) as Error;
}

describe('describeError', () => {
  it('gives every named error class of engine, storage, formats and reasoning its own title', () => {
    expect(classes.length).toBeGreaterThan(20);
    for (const C of classes) {
      const e = instance(C);
      const d = describeError(e);
      expect(d.title, `${C.name} (name ${e.name})`).not.toBe('Something went wrong');
      expect(d.message).toBe(e.message);
    }
  });

  it('titles errors from the worker by the name they carry, and anything else generically', () => {
    expect(describeError(new EngineWorkerError('GPUOutOfMemoryError', 'x')).title).toBe('Not enough GPU memory');
    expect(describeError(new EngineWorkerError('WorkerError', 'x')).title).toBe('The engine stopped');
    expect(describeError(new TypeError('x'))).toEqual({ title: 'Something went wrong', message: 'x' });
    expect(describeError('plain text')).toEqual({ title: 'Something went wrong', message: 'plain text' });
  });
});
