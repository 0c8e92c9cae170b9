/**
 * Answer extraction as LLM-Adapters does it (evaluate.py at AGI-Edgerunners/LLM-Adapters
 * 32e03afa69eb56c4eb2207d7c41e8492cf4bf54c):
 *  - numbers: `sentence.replace(',', '')`, then the LAST match of `-?\d+\.?\d*` as a float
 *    (no match: LLM-Adapters returns inf, which is never correct; we return null);
 *  - AQuA: the FIRST match of `A|B|C|D|E` in the stripped output (no match: '' there, null here).
 * Plus the pieces the problem view needs: numbered steps, and checks of the arithmetic written
 * in a solution (GSM8K calculator annotations <<48/2=24>> and plain "48 / 2 = 24").
 */
import type { AnswerKind, DatasetName } from './datasets.ts';
import { DATASETS } from './datasets.ts';

/** LLM-Adapters' extract_answer_number: last number after removing commas, or null. */
export function extractAnswerNumber(output: string): number | null {
  const matches = output.replace(/,/g, '').match(/-?\d+\.?\d*/g);
  if (!matches) return null;
  const value = parseFloat(matches[matches.length - 1]);
  return Number.isFinite(value) ? value : null;
}

/** LLM-Adapters' extract_answer_letter: first capital A–E anywhere in the output, or null. */
export function extractAnswerLetter(output: string): string | null {
  const m = /A|B|C|D|E/.exec(output.trim());
  return m ? m[0] : null;
}

/** The prediction for a dataset's answer kind. */
export function extractAnswer(dataset: DatasetName | AnswerKind, output: string): number | string | null {
  const kind: AnswerKind = dataset === 'number' || dataset === 'letter' ? dataset : DATASETS[dataset].answerKind;
  return kind === 'letter' ? extractAnswerLetter(output) : extractAnswerNumber(output);
}

// ---------------------------------------------------------------------------------------------
// Steps

/**
 * A solution laid out as steps: one per non-empty line; a one-paragraph solution is split into
 * sentences (at ". ", "! ", "? " before a capital, a digit or "$", never inside "3.5").
 */
export function splitSteps(solution: string): string[] {
  const lines = solution
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
  if (lines.length !== 1) return lines;
  return lines[0]
    .split(/(?<=[.!?])\s+(?=[A-Z0-9$(])/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

// ---------------------------------------------------------------------------------------------
// Arithmetic checks

export interface ArithmeticCheck {
  kind: 'annotation' | 'statement';
  /** The whole matched text ("<<48/2=24>>" or "48 / 2 = 24"). */
  text: string;
  /** Offsets of `text` in the solution. */
  start: number;
  end: number;
  /** Left-hand side as written. */
  expression: string;
  /** The result the solution claims. */
  claimed: number;
  /** The left-hand side evaluated; null when it cannot be (division by zero, unsupported syntax). */
  actual: number | null;
  /** claimed agrees with actual (exactly, or to the decimals the claim is written with). */
  correct: boolean | null;
}

type Tok = { t: 'num'; v: number } | { t: 'op'; v: string };

function lex(expr: string): Tok[] | null {
  const toks: Tok[] = [];
  const s = expr.replace(/,(?=\d{3}\b)/g, '').replace(/\$/g, '');
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const num = /^(\d+\.?\d*|\.\d+)/.exec(s.slice(i));
    if (num) {
      toks.push({ t: 'num', v: parseFloat(num[1]) });
      i += num[1].length;
      continue;
    }
    if ('+-*/()%'.includes(c)) {
      toks.push({ t: 'op', v: c });
      i++;
      continue;
    }
    if (c === 'x' || c === 'X' || c === '×' || c === '·') {
      toks.push({ t: 'op', v: '*' });
      i++;
      continue;
    }
    if (c === '÷') {
      toks.push({ t: 'op', v: '/' });
      i++;
      continue;
    }
    return null;
  }
  return toks;
}

/**
 * Evaluate + - * / ( ) and postfix % (÷100) with the usual precedence; null on anything else.
 * A small recursive-descent parser: model text is never handed to eval().
 */
export function evaluateArithmetic(expr: string): number | null {
  const toks = lex(expr);
  if (!toks || toks.length === 0) return null;
  let pos = 0;
  const peek = () => toks[pos];
  const isOp = (v: string) => peek()?.t === 'op' && peek()!.v === v;
  const primary = (): number | null => {
    const tok = peek();
    if (!tok) return null;
    if (tok.t === 'op' && tok.v === '-') {
      pos++;
      const v = primary();
      return v === null ? null : -v;
    }
    if (tok.t === 'op' && tok.v === '+') {
      pos++;
      return primary();
    }
    let value: number | null;
    if (tok.t === 'num') {
      pos++;
      value = tok.v;
    } else if (tok.v === '(') {
      pos++;
      value = sum();
      if (!isOp(')')) return null;
      pos++;
    } else return null;
    while (value !== null && isOp('%')) {
      pos++;
      value /= 100;
    }
    return value;
  };
  const product = (): number | null => {
    let left = primary();
    while (left !== null && (isOp('*') || isOp('/'))) {
      const op = (peek() as { v: string }).v;
      pos++;
      const right = primary();
      if (right === null) return null;
      if (op === '/' && right === 0) return null;
      left = op === '*' ? left * right : left / right;
    }
    return left;
  };
  const sum = (): number | null => {
    let left = product();
    while (left !== null && (isOp('+') || isOp('-'))) {
      const op = (peek() as { v: string }).v;
      pos++;
      const right = product();
      if (right === null) return null;
      left = op === '+' ? left + right : left - right;
    }
    return left;
  };
  const value = sum();
  return value !== null && pos === toks.length && Number.isFinite(value) ? value : null;
}

function agrees(actual: number, claimedText: string, claimed: number): boolean {
  if (Math.abs(actual - claimed) <= 1e-9 * Math.max(1, Math.abs(actual))) return true;
  // A rounded claim ("10 / 3 = 3.33") is right when it is the value at the decimals written.
  const decimals = /\.(\d+)/.exec(claimedText)?.[1].length ?? 0;
  const factor = 10 ** decimals;
  return Math.abs(Math.round(actual * factor) / factor - claimed) <= 1e-9 * Math.max(1, Math.abs(claimed)) && decimals > 0;
}

const NUM = String.raw`\$?\s*\d[\d,]*(?:\.\d+)?\s*%?`;
const OPERAND = String.raw`[(\s]*-?\s*${NUM}[)\s]*`;
const OPERATOR = String.raw`[-+*/×÷xX]`;
/** "48 / 2 = 24", "$3 x 4 = $12", "(5 + 3) * 2 = 16": at least one operator between numbers. */
const STATEMENT = new RegExp(String.raw`(?<![\w.])(${OPERAND}(?:${OPERATOR}${OPERAND})+)=\s*(-?\s*\$?\s*-?\d[\d,]*(?:\.\d+)?)`, 'g');
const ANNOTATION = /<<([^<>=]*)=([^<>]*)>>/g;

/** Every calculator annotation and plain arithmetic statement in a solution, each checked. */
export function findArithmetic(solution: string): ArithmeticCheck[] {
  const checks: ArithmeticCheck[] = [];
  for (const m of solution.matchAll(ANNOTATION)) {
    const claimedText = m[2].trim();
    const claimed = parseFloat(claimedText.replace(/[,$\s]/g, ''));
    if (!Number.isFinite(claimed)) continue;
    const actual = evaluateArithmetic(m[1]);
    checks.push({
      kind: 'annotation',
      text: m[0],
      start: m.index,
      end: m.index + m[0].length,
      expression: m[1].trim(),
      claimed,
      actual,
      correct: actual === null ? null : agrees(actual, claimedText, claimed),
    });
  }
  // Mask the annotations (same length, not blank) so neither their insides nor the GSM8K
  // "16 - 3 - 4 = <<…>>9" text around them is read again as a plain statement.
  const masked = solution.replace(ANNOTATION, (a) => '#'.repeat(a.length));
  for (const m of masked.matchAll(STATEMENT)) {
    const lhs = m[1];
    const claimedText = m[2].replace(/[\s$]/g, '');
    const claimed = parseFloat(claimedText.replace(/,/g, ''));
    if (!Number.isFinite(claimed)) continue;
    const lead = lhs.length - lhs.trimStart().length;
    const start = m.index + lead;
    const actual = evaluateArithmetic(lhs);
    checks.push({
      kind: 'statement',
      text: solution.slice(start, m.index + m[0].length),
      start,
      end: m.index + m[0].length,
      expression: lhs.trim(),
      claimed,
      actual,
      correct: actual === null ? null : agrees(actual, claimedText, claimed),
    });
  }
  return checks.sort((a, b) => a.start - b.start);
}
