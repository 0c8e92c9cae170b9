/**
 * Training data as LLM-Adapters' finetune.py prepares it
 * (AGI-Edgerunners/LLM-Adapters finetune.py @063e3d4: generate_prompt, tokenize,
 * generate_and_tokenize_prompt), plus pre-tokenized JSONL used exactly as given.
 *
 * - Records {instruction, input, output} (LLM-Adapters' JSON array, e.g. math_10k / math_data.json,
 *   or one object per JSONL line). GSM8K's own rows {question, answer} (openai/grade-school-math)
 *   are read as {instruction: question, input: "", output: answer}: our mapping, not an upstream one.
 * - generate_prompt: the f-string character for character, with what it really contains: the
 *   "  # noqa: E501" that sits *inside* the string after "request.", the 16-space indentation of
 *   every following line, and the 16-space "blank" lines.
 * - tokenize: tokenizer(prompt, truncation=True, max_length=cutoff_len): the Llama tokenizer's ids
 *   with BOS (add_bos_token), cut to cutoff_len; EOS appended when the last id is not EOS and the
 *   result is shorter than cutoff_len; labels = a copy of input_ids (train_on_inputs True, the
 *   default). train_on_inputs False: the prompt with output "" is tokenized without EOS and its
 *   length L masks labels[0..L) to -100 (clamped to the sequence: upstream would make labels longer
 *   than input_ids if L exceeded it).
 * - Pre-tokenized JSONL {"input_ids": [...], "labels": [...]}: no BOS/EOS added; longer than max_len
 *   is cut to max_len and counted.
 * - Bad input refuses the whole file with an error naming the record (index for a JSON array, line
 *   for JSONL), so nothing half-read is ever stored.
 * - An example with no trained target token (after the shift by one) is dropped and counted: in
 *   torch a micro-batch of only such examples has loss 0/0 = NaN.
 */
import type { Tokenizer } from '../formats/tokenizer.ts';
import { IGNORE_INDEX } from '../engine/referenceTraining.ts';

export interface InstructionRecord {
  instruction: string;
  input: string;
  output: string;
}

export interface TokenizedExample {
  inputIds: number[];
  labels: number[];
}

export interface PreparedDataset {
  kind: 'instructions' | 'pretokenized';
  examples: TokenizedExample[];
  /** examples cut at cutoff_len / max_len */
  truncated: number;
  /** examples dropped because no target token is labelled */
  unlabelled: number;
}

export class TrainingDataError extends Error {
  override name = 'TrainingDataError';
}

export const DEFAULT_CUTOFF_LEN = 256;

/** finetune.py's generate_prompt, character for character (see the header). */
export function generatePrompt(d: InstructionRecord): string {
  const pad = ' '.repeat(16);
  if (d.input) {
    return (
      'Below is an instruction that describes a task, paired with an input that provides further context. ' +
      'Write a response that appropriately completes the request.  # noqa: E501\n' +
      '\n' +
      `${pad}### Instruction:\n` +
      `${pad}${d.instruction}\n` +
      `${pad}\n` +
      `${pad}### Input:\n` +
      `${pad}${d.input}\n` +
      `${pad}\n` +
      `${pad}### Response:\n` +
      `${pad}${d.output}`
    );
  }
  return (
    'Below is an instruction that describes a task. Write a response that appropriately completes the request.  # noqa: E501\n' +
    '\n' +
    `${pad}### Instruction:\n` +
    `${pad}${d.instruction}\n` +
    `${pad}\n` +
    `${pad}### Response:\n` +
    `${pad}${d.output}`
  );
}

type Obj = Record<string, unknown>;
const isObj = (x: unknown): x is Obj => typeof x === 'object' && x !== null && !Array.isArray(x);

/** One record to {instruction, input, output}, or an error naming it. */
function instructionRecord(x: unknown, where: string): InstructionRecord {
  if (!isObj(x)) throw new TrainingDataError(`${where}: expected an object with instruction and output, got ${Array.isArray(x) ? 'an array' : typeof x}`);
  if ('question' in x && !('instruction' in x)) {
    // a GSM8K row
    if (typeof x.question !== 'string' || x.question.trim() === '') throw new TrainingDataError(`${where}: "question" is missing or empty`);
    if (typeof x.answer !== 'string') throw new TrainingDataError(`${where}: "answer" is missing (a GSM8K row needs question and answer)`);
    return { instruction: x.question, input: '', output: x.answer };
  }
  if (typeof x.instruction !== 'string' || x.instruction.trim() === '') throw new TrainingDataError(`${where}: "instruction" is missing or empty`);
  if (typeof x.output !== 'string') throw new TrainingDataError(`${where}: "output" is missing (every training record needs an output string)`);
  if (x.input !== undefined && x.input !== null && typeof x.input !== 'string') throw new TrainingDataError(`${where}: "input" must be a string`);
  return { instruction: x.instruction, input: typeof x.input === 'string' ? x.input : '', output: x.output };
}

export type ParsedTrainingFile = { kind: 'instructions'; records: InstructionRecord[] } | { kind: 'pretokenized'; rows: TokenizedExample[] };

function pretokenizedRow(x: Obj, where: string, vocabSize: number | undefined): TokenizedExample {
  const ids = x.input_ids;
  const labels = x.labels;
  if (!Array.isArray(ids) || ids.length === 0) throw new TrainingDataError(`${where}: "input_ids" must be a non-empty array of token ids`);
  if (!Array.isArray(labels)) throw new TrainingDataError(`${where}: "labels" is missing (pre-tokenized rows need input_ids and labels)`);
  if (labels.length !== ids.length) throw new TrainingDataError(`${where}: ${ids.length} input_ids but ${labels.length} labels`);
  ids.forEach((id, i) => {
    if (!Number.isInteger(id) || id < 0 || (vocabSize !== undefined && id >= vocabSize))
      throw new TrainingDataError(`${where}: input_ids[${i}] = ${JSON.stringify(id)} is not a token id${vocabSize ? ` below ${vocabSize}` : ''}`);
  });
  labels.forEach((y, i) => {
    if (!Number.isInteger(y) || (y !== IGNORE_INDEX && (y < 0 || (vocabSize !== undefined && y >= vocabSize)))) {
      throw new TrainingDataError(`${where}: labels[${i}] = ${JSON.stringify(y)} is neither -100 nor a token id${vocabSize ? ` below ${vocabSize}` : ''}`);
    }
  });
  return { inputIds: ids as number[], labels: labels as number[] };
}

/**
 * Parses a training file: a JSON array of instruction records (LLM-Adapters), or JSONL whose lines
 * are all instruction records / GSM8K rows, or all pre-tokenized rows. Blank lines are skipped.
 */
export function parseTrainingFile(text: string, fileName = 'training data', vocabSize?: number): ParsedTrainingFile {
  const trimmed = text.trimStart();
  if (trimmed === '') throw new TrainingDataError(`${fileName} is empty`);
  if (trimmed.startsWith('[')) {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new TrainingDataError(`${fileName} is not valid JSON: ${(e as Error).message}`, { cause: e });
    }
    const arr = json as unknown[];
    if (arr.length === 0) throw new TrainingDataError(`${fileName} has no records`);
    return { kind: 'instructions', records: arr.map((x, i) => instructionRecord(x, `${fileName} record ${i}`)) };
  }
  const records: InstructionRecord[] = [];
  const rows: TokenizedExample[] = [];
  let kind: 'instructions' | 'pretokenized' | undefined;
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === '') return;
    const where = `${fileName} line ${i + 1}`;
    let x: unknown;
    try {
      x = JSON.parse(line);
    } catch (e) {
      throw new TrainingDataError(`${where} is not valid JSON: ${(e as Error).message}`, { cause: e });
    }
    if (!isObj(x)) throw new TrainingDataError(`${where}: expected a JSON object`);
    const k = 'input_ids' in x ? 'pretokenized' : 'instructions';
    if (kind && k !== kind)
      throw new TrainingDataError(
        `${where}: a ${k === 'pretokenized' ? 'pre-tokenized row' : 'text record'} in a file of ${kind === 'pretokenized' ? 'pre-tokenized rows' : 'text records'}`,
      );
    kind = k;
    if (k === 'pretokenized') rows.push(pretokenizedRow(x, where, vocabSize));
    else records.push(instructionRecord(x, where));
  });
  if (!kind) throw new TrainingDataError(`${fileName} has no records`);
  return kind === 'pretokenized' ? { kind, rows } : { kind, records };
}

export interface TokenizeOptions {
  cutoffLen?: number;
  trainOnInputs?: boolean;
}

/** finetune.py's tokenize(prompt, add_eos_token): ids with BOS, cut at cutoffLen, EOS appended when room. */
export function tokenizePrompt(tok: Tokenizer, prompt: string, cutoffLen: number, addEos: boolean): { ids: number[]; truncated: boolean } {
  const full = tok.encode(prompt, { addBos: true });
  const truncated = full.length > cutoffLen;
  const ids = full.slice(0, cutoffLen);
  if (ids[ids.length - 1] !== tok.eosId && ids.length < cutoffLen && addEos) ids.push(tok.eosId);
  return { ids, truncated };
}

/** finetune.py's generate_and_tokenize_prompt for one record. */
export function tokenizeRecord(tok: Tokenizer, rec: InstructionRecord, opts: TokenizeOptions = {}): TokenizedExample & { truncated: boolean } {
  const cutoff = opts.cutoffLen ?? DEFAULT_CUTOFF_LEN;
  if (!Number.isInteger(cutoff) || cutoff < 2) throw new TrainingDataError(`cutoff_len ${cutoff} must be an integer ≥ 2`);
  const { ids, truncated } = tokenizePrompt(tok, generatePrompt(rec), cutoff, true);
  const labels = ids.slice();
  if (opts.trainOnInputs === false) {
    const user = tokenizePrompt(tok, generatePrompt({ ...rec, output: '' }), cutoff, false).ids.length;
    for (let i = 0; i < Math.min(user, labels.length); i++) labels[i] = IGNORE_INDEX;
  }
  return { inputIds: ids, labels, truncated };
}

/** True when some target (labels[1..]) is trained: the loss shifts labels by one. */
export function hasTrainedTarget(ex: TokenizedExample): boolean {
  for (let i = 1; i < ex.labels.length; i++) if (ex.labels[i] !== IGNORE_INDEX) return true;
  return false;
}

export interface PrepareOptions extends TokenizeOptions {
  /** pre-tokenized rows longer than this are cut (default: cutoffLen, 256) */
  maxLen?: number;
}

/** A training file to tokenized examples, with counts of what was cut or dropped. */
export function prepareTrainingData(tok: Tokenizer, text: string, fileName = 'training data', opts: PrepareOptions = {}): PreparedDataset {
  const parsed = parseTrainingFile(text, fileName, tok.vocabSize);
  let truncated = 0;
  let unlabelled = 0;
  const examples: TokenizedExample[] = [];
  const keep = (ex: TokenizedExample) => {
    if (hasTrainedTarget(ex)) examples.push(ex);
    else unlabelled++;
  };
  if (parsed.kind === 'pretokenized') {
    const maxLen = opts.maxLen ?? opts.cutoffLen ?? DEFAULT_CUTOFF_LEN;
    if (!Number.isInteger(maxLen) || maxLen < 2) throw new TrainingDataError(`max_len ${maxLen} must be an integer ≥ 2`);
    for (const row of parsed.rows) {
      if (row.inputIds.length > maxLen) truncated++;
      keep({ inputIds: row.inputIds.slice(0, maxLen), labels: row.labels.slice(0, maxLen) });
    }
    return { kind: 'pretokenized', examples, truncated, unlabelled };
  }
  for (const rec of parsed.records) {
    const ex = tokenizeRecord(tok, rec, opts);
    if (ex.truncated) truncated++;
    keep({ inputIds: ex.inputIds, labels: ex.labels });
  }
  return { kind: 'instructions', examples, truncated, unlabelled };
}
