/**
 * Dataset parsing (pure: Node and browser). Two layouts:
 *  - OpenAI GSM8K jsonl: one {"question", "answer"} per line, gold = the answer's last "#### n" line.
 *  - LLM-Adapters json: an array of {"instruction", "input", "output", "answer"} (gsm8k, SVAMP,
 *    AQuA with option letters, mawps); also accepted one object per line.
 * A malformed line or item is excluded and reported in `skipped` with its line number and reason.
 */
import { gsm8kTarget } from './lmEval.ts';

export type DatasetName = 'gsm8k' | 'svamp' | 'aqua' | 'mawps';
export const DATASET_NAMES: readonly DatasetName[] = ['gsm8k', 'svamp', 'aqua', 'mawps'];

export type AnswerKind = 'number' | 'letter';

export interface DatasetInfo {
  name: DatasetName;
  label: string;
  answerKind: AnswerKind;
  /** Path under a data base URL, in the ../shared/data layout. */
  path: string;
  /** Where the file is published (the default source). */
  publicUrl: string;
  /** Number of problems in the published test set. */
  size: number;
}

export const DATASETS: Record<DatasetName, DatasetInfo> = {
  gsm8k: {
    name: 'gsm8k',
    label: 'GSM8K',
    answerKind: 'number',
    path: 'gsm8k/test.jsonl',
    publicUrl: 'https://raw.githubusercontent.com/openai/grade-school-math/master/grade_school_math/data/test.jsonl',
    size: 1319,
  },
  svamp: {
    name: 'svamp',
    label: 'SVAMP',
    answerKind: 'number',
    path: 'llm-adapters/SVAMP/test.json',
    publicUrl: 'https://raw.githubusercontent.com/AGI-Edgerunners/LLM-Adapters/main/dataset/SVAMP/test.json',
    size: 1000,
  },
  aqua: {
    name: 'aqua',
    label: 'AQuA',
    answerKind: 'letter',
    path: 'llm-adapters/AQuA/test.json',
    publicUrl: 'https://raw.githubusercontent.com/AGI-Edgerunners/LLM-Adapters/main/dataset/AQuA/test.json',
    size: 254,
  },
  mawps: {
    name: 'mawps',
    label: 'MAWPS',
    answerKind: 'number',
    path: 'llm-adapters/mawps/test.json',
    publicUrl: 'https://raw.githubusercontent.com/AGI-Edgerunners/LLM-Adapters/main/dataset/mawps/test.json',
    size: 238,
  },
};

export function isDatasetName(name: string): name is DatasetName {
  return (DATASET_NAMES as readonly string[]).includes(name);
}

export interface Problem {
  /** Position in the data file, 0-based (jsonl: record number; json: array index). Skipped items keep their slot. */
  index: number;
  question: string;
  /** Numeric answer, or an option letter (AQuA). */
  gold: number | string;
  /** A reference solution when the file has one (GSM8K's worked answer, LLM-Adapters' "output"). */
  goldSolution?: string;
  /**
   * The answer as text, for lm-evaluation-harness' exact match: GSM8K's text after its last '####'
   * (gsm8k-cot.yaml doc_to_target), an LLM-Adapters file's "answer" as written. Absent: String(gold).
   */
  target?: string;
}

export interface SkippedItem {
  /** 1-based line in the file where the line/item starts. */
  line: number;
  /** The index the item would have had. */
  index: number;
  reason: string;
}

export interface ParsedDataset {
  format: 'openai-jsonl' | 'llm-adapters-json' | 'llm-adapters-jsonl';
  problems: Problem[];
  skipped: SkippedItem[];
  /** Number of records in the file (problems + skipped). */
  total: number;
}

export class DatasetParseError extends Error {
  override name = 'DatasetParseError';
}

/** GSM8K gold: the last "#### n" line, commas removed. */
export function parseGsm8kGold(answer: string): number | null {
  const lines = answer.trimEnd().split('\n');
  const last = lines[lines.length - 1] ?? '';
  const m = /^####\s*(.+)$/.exec(last.trim());
  if (!m) return null;
  return parseNumber(m[1]);
}

/** A number written in a data file ("1,234", "576.0", "-3", "$5"), or null. */
export function parseNumber(text: string): number | null {
  const cleaned = text.replace(/,/g, '').replace(/^\$/, '').trim();
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(cleaned)) return null;
  const value = Number(cleaned);
  return Number.isFinite(value) ? value : null;
}

type Item = Record<string, unknown>;

/** One record → Problem, or the reason it cannot be one. */
function toProblem(item: unknown, index: number, answerKind: AnswerKind): Problem | string {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) return 'not a JSON object';
  const o = item as Item;
  if ('question' in o) {
    // OpenAI GSM8K.
    if (typeof o.question !== 'string' || o.question.trim() === '') return 'missing "question"';
    if (typeof o.answer !== 'string') return 'missing "answer"';
    const gold = parseGsm8kGold(o.answer);
    if (gold === null) return 'answer has no parseable "#### <number>" line';
    return { index, question: o.question, gold, goldSolution: o.answer, target: gsm8kTarget(o.answer) };
  }
  if (typeof o.instruction !== 'string' || o.instruction.trim() === '') return 'missing "question"/"instruction"';
  const input = typeof o.input === 'string' && o.input.trim() !== '' ? o.input : '';
  const question = input ? `${o.instruction}\n${input}` : o.instruction;
  const goldSolution = typeof o.output === 'string' && o.output.trim() !== '' ? o.output : undefined;
  if (o.answer === undefined || o.answer === null || o.answer === '') return 'missing "answer"';
  let gold: number | string;
  if (answerKind === 'letter') {
    const letter = String(o.answer).trim();
    if (!/^[A-E]$/.test(letter)) return `answer "${String(o.answer)}" is not an option letter A-E`;
    gold = letter;
  } else {
    const value = typeof o.answer === 'number' ? (Number.isFinite(o.answer) ? o.answer : null) : typeof o.answer === 'string' ? parseNumber(o.answer) : null;
    if (value === null) return `answer ${JSON.stringify(o.answer)} is not a number`;
    gold = value;
  }
  // The lm-eval modes score numbers only; a JSON number reads back through String (5.0 as "5").
  const extra = answerKind === 'number' ? { target: String(o.answer).trim() } : {};
  return goldSolution === undefined ? { index, question, gold, ...extra } : { index, question, gold, goldSolution, ...extra };
}

/**
 * Parse a dataset file's text. The layout is detected: a JSON array (LLM-Adapters) or one JSON
 * object per line (OpenAI GSM8K, or LLM-Adapters objects). `answerKind` defaults from the dataset.
 */
export function parseDataset(text: string, dataset: DatasetName | AnswerKind): ParsedDataset {
  const answerKind: AnswerKind = dataset === 'number' || dataset === 'letter' ? dataset : DATASETS[dataset].answerKind;
  const body = text.replace(/^\uFEFF/, '');
  if (body.trimStart().startsWith('[')) return parseJsonArray(body, answerKind);
  return parseJsonLines(body, answerKind);
}

function parseJsonLines(text: string, answerKind: AnswerKind): ParsedDataset {
  const problems: Problem[] = [];
  const skipped: SkippedItem[] = [];
  let index = 0;
  let sawInstruction = false;
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '') return; // blank lines are not records
    const lineNo = i + 1;
    let item: unknown;
    try {
      item = JSON.parse(line);
    } catch (e) {
      skipped.push({ line: lineNo, index, reason: `invalid JSON (${(e as Error).message})` });
      index++;
      return;
    }
    if (typeof item === 'object' && item !== null && 'instruction' in item) sawInstruction = true;
    const p = toProblem(item, index, answerKind);
    if (typeof p === 'string') skipped.push({ line: lineNo, index, reason: p });
    else problems.push(p);
    index++;
  });
  return { format: sawInstruction ? 'llm-adapters-jsonl' : 'openai-jsonl', problems, skipped, total: index };
}

/** 1-based line of each top-level array element's first character. */
function elementLines(text: string): number[] {
  const lines: number[] = [];
  let line = 1;
  let depth = 0;
  let inString = false;
  let escaped = false;
  let expectElement = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\n') line++;
    if (inString) {
      if (escaped) escaped = false;
      else if (c === '\\') escaped = true;
      else if (c === '"') inString = false;
      continue;
    }
    if (depth === 1 && expectElement && !/\s/.test(c) && c !== ']') {
      lines.push(line);
      expectElement = false;
    }
    if (c === '"') inString = true;
    else if (c === '[' || c === '{') {
      depth++;
      if (depth === 1) expectElement = true;
    } else if (c === ']' || c === '}') depth--;
    else if (c === ',' && depth === 1) expectElement = true;
  }
  return lines;
}

function parseJsonArray(text: string, answerKind: AnswerKind): ParsedDataset {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    const msg = (e as Error).message;
    const pos = /position (\d+)/.exec(msg);
    const where = pos ? ` at line ${text.slice(0, Number(pos[1])).split('\n').length}` : '';
    throw new DatasetParseError(`The dataset file is not valid JSON${where}: ${msg}`);
  }
  if (!Array.isArray(data)) throw new DatasetParseError('The dataset file is JSON but not an array of items');
  const lines = elementLines(text);
  const problems: Problem[] = [];
  const skipped: SkippedItem[] = [];
  data.forEach((item, index) => {
    const p = toProblem(item, index, answerKind);
    if (typeof p === 'string') skipped.push({ line: lines[index] ?? 0, index, reason: p });
    else problems.push(p);
  });
  return { format: 'llm-adapters-json', problems, skipped, total: data.length };
}

/** A human-readable line per skipped item ("line 12 (item 11): missing \"question\""). */
export function describeSkipped(skipped: readonly SkippedItem[]): string[] {
  return skipped.map((s) => `line ${s.line} (item ${s.index}): ${s.reason}`);
}

/** Deterministic shuffled order of 0..n-1 for a seed (mulberry32 + Fisher–Yates). */
export function seededOrder(n: number, seed: number): number[] {
  let a = seed >>> 0;
  const random = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

/** The problems to run: all of them, or the first `limit` of a seeded order (seed omitted: file order). */
export function selectProblems(problems: readonly Problem[], options: { limit?: number; seed?: number } = {}): Problem[] {
  const order = options.seed === undefined ? problems.map((_, i) => i) : seededOrder(problems.length, options.seed);
  const picked = order.map((i) => problems[i]);
  return options.limit === undefined ? picked : picked.slice(0, Math.max(0, options.limit));
}
