/**
 * PyTorch `torch.save` state dicts (`adapter_model.bin`, `pytorch_model*.bin`) read WITHOUT running
 * pickled code: a restricted unpickler that knows only the opcodes a tensor state dict uses and
 * accepts only the globals such a dict needs (OrderedDict, the tensor/parameter rebuild functions
 * and the typed storage classes). Anything else is refused with its name.
 *
 * Both container formats torch.save writes are read:
 *  - the zip format (torch >= 1.6, `_use_new_zipfile_serialization=True`): `<archive>/data.pkl` is the
 *    pickle, each storage is the stored entry `<archive>/data/<key>` (raw little-endian bytes);
 *  - the legacy format: five consecutive pickles (magic number, protocol version, sys_info, the state
 *    dict, the list of storage keys), then for each key an int64 element count and the raw bytes.
 * Sources: pytorch `torch/serialization.py` (`_save`, `_legacy_save`, `_load`, `_legacy_load`,
 * `persistent_load`), `torch/_utils.py` (`_rebuild_tensor_v2`, `_rebuild_parameter`), CPython
 * `Lib/pickle.py` (opcode table) and `Lib/pickletools.py` (opcode semantics).
 */
import { unzipSync } from 'fflate';
import { bf16ArrayToF32, f16ArrayToF32 } from './f16.ts';

export class TorchPickleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TorchPickleError';
  }
}

export type TorchDtype = 'float64' | 'float32' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

/** One tensor of the state dict, made contiguous: row-major little-endian bytes of `shape`. */
export interface TorchTensor {
  dtype: TorchDtype;
  shape: number[];
  bytes: Uint8Array;
}

/** torch.<Name>Storage → element type (torch/storage.py's legacy typed storage classes). */
const STORAGE_DTYPES: Record<string, { dtype: TorchDtype; size: number }> = {
  DoubleStorage: { dtype: 'float64', size: 8 },
  FloatStorage: { dtype: 'float32', size: 4 },
  HalfStorage: { dtype: 'float16', size: 2 },
  BFloat16Storage: { dtype: 'bfloat16', size: 2 },
  LongStorage: { dtype: 'int64', size: 8 },
  IntStorage: { dtype: 'int32', size: 4 },
  ShortStorage: { dtype: 'int16', size: 2 },
  CharStorage: { dtype: 'int8', size: 1 },
  ByteStorage: { dtype: 'uint8', size: 1 },
  BoolStorage: { dtype: 'bool', size: 1 },
};

/** The only callables the unpickler will "call" (each implemented here, none imported). */
const ALLOWED_CALLABLES = new Set(['collections.OrderedDict', 'torch._utils._rebuild_tensor_v2', 'torch._utils._rebuild_parameter']);

class Global {
  constructor(readonly name: string) {}
}
class StorageType {
  constructor(
    readonly name: string,
    readonly dtype: TorchDtype,
    readonly size: number,
  ) {}
}
/** A storage named by a persistent id: its bytes are looked up when a tensor is rebuilt. */
class StorageRef {
  constructor(
    readonly type: StorageType,
    readonly key: string,
    /** Element offset of a legacy view into its root storage (0 otherwise). */
    readonly viewOffset: number,
    readonly numel: number,
  ) {}
}
class Tensor {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly size: number[],
    readonly stride: number[],
  ) {}
}
const MARK = Symbol('mark');

type Value = unknown;

/** What a pickle's persistent ids resolve to: ('storage', type, key, location, numel[, view]). */
function storageFromPid(pid: Value): StorageRef {
  if (!Array.isArray(pid) || pid[0] !== 'storage') throw new TorchPickleError(`unsupported persistent id ${describe(pid)}: only tensor storages are read`);
  const [, type, key, , numel, view] = pid as [string, Value, Value, Value, Value, Value];
  if (!(type instanceof StorageType)) throw new TorchPickleError(`a storage of unknown type ${describe(type)}`);
  if (typeof key !== 'string' || typeof numel !== 'number') throw new TorchPickleError(`malformed storage id ${describe(pid)}`);
  if (Array.isArray(view)) {
    // Legacy views: (view_key, offset, view_size) into the root storage `key`.
    const [, offset, viewSize] = view as [Value, Value, Value];
    if (typeof offset !== 'number' || typeof viewSize !== 'number') throw new TorchPickleError(`malformed storage view ${describe(view)}`);
    return new StorageRef(type, key, offset, viewSize);
  }
  return new StorageRef(type, key, 0, numel);
}

function describe(v: Value): string {
  if (v instanceof Global) return v.name;
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return `(${v.map(describe).join(', ')})`;
  return String(v);
}

/**
 * Run one pickle from `start`; returns its value and where it stopped. Only the opcodes a
 * torch.save state dict uses (protocols 2-5) are known: any other is refused by name.
 */
function unpickle(buf: Uint8Array, start: number, what: string): { value: Value; end: number } {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const text = new TextDecoder('utf-8', { fatal: true });
  const latin1 = new TextDecoder('latin1');
  const stack: Value[] = [];
  const memo = new Map<number, Value>();
  let p = start;
  const need = (n: number) => {
    if (p + n > buf.length) throw new TorchPickleError(`${what} ends in the middle of a pickle (truncated file?)`);
  };
  const u8 = () => (need(1), buf[p++]);
  const u32 = () => (need(4), (p += 4), view.getUint32(p - 4, true));
  const bytes = (n: number) => (need(n), (p += n), buf.subarray(p - n, p));
  const line = () => {
    const e = buf.indexOf(0x0a, p);
    if (e < 0) throw new TorchPickleError(`${what} ends in the middle of a pickle (truncated file?)`);
    const s = latin1.decode(buf.subarray(p, e));
    p = e + 1;
    return s;
  };
  const popMark = (): Value[] => {
    const i = stack.lastIndexOf(MARK);
    if (i < 0) throw new TorchPickleError(`${what}: malformed pickle (no mark)`);
    const items = stack.splice(i + 1);
    stack.pop();
    return items;
  };
  const pop = (): Value => {
    if (stack.length === 0) throw new TorchPickleError(`${what}: malformed pickle (empty stack)`);
    return stack.pop();
  };
  const top = (): Value => stack[stack.length - 1];
  const setItems = (dict: Value, items: Value[]) => {
    if (!(dict instanceof Map)) throw new TorchPickleError(`${what}: malformed pickle (items set on a ${describe(dict)})`);
    for (let i = 0; i + 1 < items.length; i += 2) dict.set(items[i], items[i + 1]);
  };
  const global = (module: string, name: string): Value => {
    const full = `${module}.${name}`;
    if (module === 'torch' && name in STORAGE_DTYPES) return new StorageType(name, STORAGE_DTYPES[name].dtype, STORAGE_DTYPES[name].size);
    if (ALLOWED_CALLABLES.has(full)) return new Global(full);
    throw new TorchPickleError(
      `${what} asks for the Python global "${full}", which a tensor state dict never needs: refused (this reader runs no pickled code; only tensors in dicts are read)`,
    );
  };
  const call = (fn: Value, args: Value): Value => {
    if (!(fn instanceof Global)) throw new TorchPickleError(`${what}: refused to call ${describe(fn)} (not an allowed tensor constructor)`);
    const a = args as Value[];
    switch (fn.name) {
      case 'collections.OrderedDict':
        return new Map();
      case 'torch._utils._rebuild_parameter':
        return a[0];
      case 'torch._utils._rebuild_tensor_v2': {
        const [storage, offset, size, stride] = a as [Value, Value, Value, Value];
        if (!(storage instanceof StorageRef) || typeof offset !== 'number' || !Array.isArray(size) || !Array.isArray(stride))
          throw new TorchPickleError(`${what}: malformed tensor ${describe(a)}`);
        return new Tensor(storage, offset, size as number[], stride as number[]);
      }
    }
    throw new TorchPickleError(`${what}: refused to call ${fn.name}`);
  };

  for (;;) {
    const at = p;
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        u8();
        break;
      case 0x95: // FRAME
        bytes(8);
        break;
      case 0x2e: // STOP
        return { value: pop(), end: p };
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push([]);
        break;
      case 0x28: // MARK
        stack.push(MARK);
        break;
      case 0x74: // TUPLE
        stack.push(popMark());
        break;
      case 0x85: // TUPLE1
        stack.push([pop()]);
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        stack.push([pop(), b]);
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        stack.push([pop(), b, c]);
        break;
      }
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        const k = op === 0x68 ? u8() : u32();
        if (!memo.has(k)) throw new TorchPickleError(`${what}: malformed pickle (memo ${k} missing)`);
        stack.push(memo.get(k));
        break;
      }
      case 0x58: // BINUNICODE
        stack.push(text.decode(bytes(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(text.decode(bytes(u8())));
        break;
      case 0x55: // SHORT_BINSTRING (protocol-2 pickles of Python 2 str)
        stack.push(latin1.decode(bytes(u8())));
        break;
      case 0x54: // BINSTRING
        stack.push(latin1.decode(bytes(u32())));
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        need(2);
        stack.push(view.getUint16(p, true));
        p += 2;
        break;
      case 0x4a: // BININT
        need(4);
        stack.push(view.getInt32(p, true));
        p += 4;
        break;
      case 0x8a: {
        // LONG1: little-endian two's complement of n bytes
        const b = bytes(u8());
        let v = 0n;
        for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
        if (b.length > 0 && b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
        stack.push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        break;
      }
      case 0x47: // BINFLOAT (big-endian double)
        need(8);
        stack.push(view.getFloat64(p, false));
        p += 8;
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x63: {
        // GLOBAL
        const module = line();
        stack.push(global(module, line()));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw new TorchPickleError(`${what}: malformed pickle (global name)`);
        stack.push(global(module, name));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        stack.push(call(pop(), args));
        break;
      }
      case 0x51: // BINPERSID
        stack.push(storageFromPid(pop()));
        break;
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop();
        (top() as Value[]).push(v);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        (top() as Value[]).push(...items);
        break;
      }
      case 0x62: // BUILD: an OrderedDict's attribute state (state_dict's `_metadata`): not needed
        pop();
        break;
      case 0x30: // POP
        pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      default:
        throw new TorchPickleError(`${what}: pickle opcode 0x${op.toString(16).padStart(2, '0')} at byte ${at} is not one a tensor state dict uses: refused`);
    }
  }
}

/** The tensor's elements in row-major order, copied out of its storage by size/stride/offset. */
function contiguous(name: string, t: Tensor, storageBytes: Uint8Array): TorchTensor {
  const el = t.storage.type.size;
  const numel = t.size.reduce((a, b) => a * b, 1);
  const base = t.storage.viewOffset + t.offset;
  let last = base;
  for (let d = 0; d < t.size.length; d++) if (t.size[d] > 0) last += (t.size[d] - 1) * t.stride[d];
  if (numel > 0 && (base < 0 || (last + 1) * el > storageBytes.length))
    throw new TorchPickleError(
      `tensor "${name}" reaches past the end of its storage "${t.storage.key}" (${storageBytes.length} bytes): the file is truncated or corrupt`,
    );
  const out = new Uint8Array(numel * el);
  const idx = new Array<number>(t.size.length).fill(0);
  for (let i = 0; i < numel; i++) {
    let src = base;
    for (let d = 0; d < idx.length; d++) src += idx[d] * t.stride[d];
    out.set(storageBytes.subarray(src * el, src * el + el), i * el);
    for (let d = idx.length - 1; d >= 0; d--) {
      if (++idx[d] < t.size[d]) break;
      idx[d] = 0;
    }
  }
  return { dtype: t.storage.type.dtype, shape: [...t.size], bytes: out };
}

function collect(dict: Value, storages: (ref: StorageRef) => Uint8Array, what: string): Map<string, TorchTensor> {
  if (!(dict instanceof Map)) throw new TorchPickleError(`${what} holds ${describe(dict)}, not a dict of tensors`);
  const out = new Map<string, TorchTensor>();
  for (const [k, v] of dict) {
    if (typeof k !== 'string') throw new TorchPickleError(`${what} has a non-string key ${describe(k)}`);
    if (!(v instanceof Tensor)) throw new TorchPickleError(`${what}: entry "${k}" is ${describe(v)}, not a tensor (only flat state dicts of tensors are read)`);
    out.set(k, contiguous(k, v, storages(v.storage)));
  }
  return out;
}

const ZIP_MAGIC = [0x50, 0x4b, 0x03, 0x04];
/** The legacy format's first pickle: torch/serialization.py MAGIC_NUMBER. */
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;

/** Read a torch.save file (zip or legacy) into its tensors, running no pickled code. */
export function readTorchStateDict(file: Uint8Array, what = 'the .bin file'): Map<string, TorchTensor> {
  if (file.length >= 4 && ZIP_MAGIC.every((b, i) => file[i] === b)) {
    let entries: Record<string, Uint8Array>;
    try {
      entries = unzipSync(file);
    } catch (e) {
      throw new TorchPickleError(`${what} is a zip archive that cannot be read (${(e as Error).message}): truncated or corrupt?`);
    }
    const pkl = Object.keys(entries).find((n) => /^[^/]+\/data\.pkl$/.test(n));
    if (!pkl) throw new TorchPickleError(`${what} is a zip archive without <name>/data.pkl: not a torch.save file`);
    const prefix = pkl.slice(0, -'data.pkl'.length);
    const order = entries[`${prefix}byteorder`];
    if (order && new TextDecoder().decode(order).trim() !== 'little') throw new TorchPickleError(`${what} was saved on a big-endian machine: not supported`);
    const { value } = unpickle(entries[pkl], 0, what);
    return collect(
      value,
      (ref) => {
        const data = entries[`${prefix}data/${ref.key}`];
        if (!data) throw new TorchPickleError(`${what} lacks the storage data/${ref.key}: truncated or corrupt`);
        return data;
      },
      what,
    );
  }
  // Legacy: magic, protocol version, sys_info, the dict, the storage keys, then the storages.
  let pos = 0;
  const next = (label: string) => {
    const r = unpickle(file, pos, `${what} (${label})`);
    pos = r.end;
    return r.value;
  };
  let magic: Value;
  try {
    magic = next('magic number');
  } catch {
    throw new TorchPickleError(`${what} is neither a zip nor a legacy torch.save file`);
  }
  if (typeof magic !== 'bigint' || magic !== LEGACY_MAGIC)
    throw new TorchPickleError(`${what} is neither a zip nor a legacy torch.save file (wrong magic number)`);
  const version = next('protocol version');
  if (version !== 1001) throw new TorchPickleError(`${what} has torch.save protocol version ${describe(version)}; only 1001 is known`);
  const sysInfo = next('sys_info');
  if (sysInfo instanceof Map && sysInfo.get('little_endian') === false) throw new TorchPickleError(`${what} was saved on a big-endian machine: not supported`);
  const dict = next('state dict');
  const keys = next('storage keys');
  if (!Array.isArray(keys) || keys.some((k) => typeof k !== 'string')) throw new TorchPickleError(`${what}: malformed storage key list`);
  // Element sizes come from the dict's storage ids (the raw records only give element counts).
  const sizes = new Map<string, number>();
  const walk = (v: Value) => {
    if (v instanceof Map) for (const t of v.values()) if (t instanceof Tensor) sizes.set(t.storage.key, t.storage.type.size);
  };
  walk(dict);
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const data = new Map<string, Uint8Array>();
  for (const key of keys as string[]) {
    if (pos + 8 > file.length) throw new TorchPickleError(`${what} ends before storage ${key}: truncated`);
    const numel = Number(view.getBigInt64(pos, true));
    const bytes = numel * (sizes.get(key) ?? 1);
    pos += 8;
    if (pos + bytes > file.length) throw new TorchPickleError(`${what} ends inside storage ${key} (${bytes} bytes expected): truncated`);
    data.set(key, file.subarray(pos, pos + bytes));
    pos += bytes;
  }
  return collect(
    dict,
    (ref) => {
      const d = data.get(ref.key);
      if (!d) throw new TorchPickleError(`${what} lacks the storage ${ref.key}: truncated or corrupt`);
      return d;
    },
    what,
  );
}

/** A floating-point tensor's values as float32 (float64 rounds; integer tensors are refused by name). */
export function torchTensorToF32(name: string, t: TorchTensor): Float32Array {
  const b = t.bytes.slice();
  switch (t.dtype) {
    case 'float32':
      return new Float32Array(b.buffer);
    case 'float16':
      return f16ArrayToF32(new Uint16Array(b.buffer));
    case 'bfloat16':
      return bf16ArrayToF32(new Uint16Array(b.buffer));
    case 'float64':
      return Float32Array.from(new Float64Array(b.buffer));
    default:
      throw new TorchPickleError(`tensor "${name}" is ${t.dtype}, not a floating-point weight`);
  }
}
