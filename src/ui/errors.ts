/**
 * A title for every named error the app can meet (engine, storage, formats, reasoning), so no
 * known error shows as "Something went wrong". Keyed by `name`: errors from the worker arrive as
 * EngineWorkerError carrying the original class's name.
 */
const TITLES: Record<string, string> = {
  // src/engine
  WebGPUUnavailableError: 'WebGPU is not available',
  DeviceLostError: 'The GPU stopped responding',
  GPUOutOfMemoryError: 'Not enough GPU memory',
  BufferLimitError: 'A buffer is larger than this GPU allows',
  ModelFormatError: 'The model files could not be read',
  GenerationCancelledError: 'The generation was stopped',
  EngineError: 'The engine could not do that',
  WorkerError: 'The engine stopped',
  WebLLMUnavailableError: 'WebLLM could not start',
  PromptTooLongError: 'The prompt is too long for this model',
  NotSupportedError: 'Not possible with this engine',
  // src/storage
  NetworkError: 'The download could not reach the server',
  HttpError: 'The server refused a file',
  IntegrityError: 'A downloaded file is damaged',
  QuotaError: 'Not enough storage room in this browser',
  CancelledError: 'The download was paused',
  NotStoredError: 'The model is not downloaded',
  BusyError: 'Another tab is using this model',
  // src/formats/fetchFile.ts (every host read the same way)
  FileNotFoundError: 'A file was not found on the server',
  BrokenFileError: 'A file arrived incomplete',
  HostUnreachableError: 'The server could not be reached',
  HttpStatusError: 'The server refused a file',
  // src/formats
  ManifestError: 'The model manifest is not valid',
  AdapterMismatchError: 'The adapter was made for another base model',
  AdapterError: 'The adapter does not fit this model',
  SafetensorsError: 'The safetensors file could not be read',
  TensorCacheError: 'The tensor cache could not be read',
  MlcChatConfigError: 'The model configuration could not be read',
  ModelFilesError: 'The model files are incomplete',
  TorchPickleError: 'The PyTorch file could not be read safely',
  // src/reasoning
  DatasetDownloadError: 'The dataset could not be downloaded',
  DatasetParseError: 'The dataset could not be read',
  ScoreError: 'The predictions could not be scored',
  RunCancelled: 'The run was stopped',
  ShardSpecError: 'The shard is not valid',
  MergeError: 'The result files do not form one run',
  // src/training, src/cli
  TrainingDataError: 'The training data could not be used',
  CheckpointError: 'The checkpoint could not be read',
};

/** A user-facing title and message for anything thrown by the engine, storage, formats or the browser. */
export function describeError(e: unknown): { title: string; message: string } {
  const err = e instanceof Error ? e : new Error(String(e));
  return { title: TITLES[err.name] ?? 'Something went wrong', message: err.message };
}
