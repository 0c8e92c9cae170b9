/**
 * A float32 state dict written the way torch.save writes one, in both of its container formats,
 * for tests that need an adapter_model.bin of a given adapter (src/formats/torchPickle.ts reads
 * them; ../shared/data/torch-pickle/ holds files written by real torch.save, checked by the unit tests).
 *  - zip (torch >= 1.6): `archive/data.pkl`, `archive/byteorder`, `archive/version`, `archive/data/<key>`;
 *  - legacy: the magic-number, protocol-version, sys_info, state-dict and storage-key pickles, then
 *    each storage as an int64 element count and its bytes.
 * The state-dict pickle is protocol 2, as torch writes it: an OrderedDict of
 * torch._utils._rebuild_tensor_v2(persistent id ('storage', torch.FloatStorage, key, 'cpu', numel),
 * offset 0, size, contiguous stride, requires_grad False, OrderedDict()).
 * Source: pytorch torch/serialization.py (`_save`, `_legacy_save`), torch/_tensor.py (`__reduce_ex__`).
 */
import { zipSync } from 'fflate';

export interface F32Tensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

const enc = new TextEncoder();

class Pickle {
  bytes: number[] = [];
  op(...b: number[]) {
    this.bytes.push(...b);
    return this;
  }
  str(s: string) {
    const u = enc.encode(s);
    const n = u.length;
    return this.op(0x58, n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, n >>> 24, ...u); // BINUNICODE
  }
  int(v: number) {
    return this.op(0x4a, v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff); // BININT
  }
  global(module: string, name: string) {
    return this.op(0x63, ...enc.encode(`${module}\n${name}\n`)); // GLOBAL
  }
  tuple(values: number[]) {
    this.op(0x28); // MARK
    for (const v of values) this.int(v);
    return this.op(0x74); // TUPLE
  }
  done() {
    return new Uint8Array([...this.bytes, 0x2e]); // STOP
  }
}

/** The state-dict pickle; `legacy` adds the view slot (None) legacy persistent ids carry. */
function stateDictPickle(tensors: F32Tensor[], legacy: boolean): Uint8Array {
  const p = new Pickle().op(0x80, 0x02).global('collections', 'OrderedDict').op(0x29, 0x52).op(0x28); // OrderedDict() MARK
  tensors.forEach((t, i) => {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    const stride = t.shape.map((_, d) => t.shape.slice(d + 1).reduce((a, b) => a * b, 1));
    p.str(t.name).global('torch._utils', '_rebuild_tensor_v2').op(0x28); // MARK (the call's arguments)
    p.op(0x28).str('storage').global('torch', 'FloatStorage').str(String(i)).str('cpu').int(numel);
    if (legacy) p.op(0x4e); // NONE: no view
    p.op(0x74, 0x51); // TUPLE BINPERSID
    p.int(0).tuple(t.shape).tuple(stride).op(0x89); // offset, size, stride, requires_grad=False
    p.global('collections', 'OrderedDict').op(0x29, 0x52); // backward hooks: OrderedDict()
    p.op(0x74, 0x52); // TUPLE REDUCE
  });
  return p.op(0x75).done(); // SETITEMS
}

const u8 = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** torch.save(state_dict) in the zip format. */
export function torchSaveZip(tensors: F32Tensor[], archive = 'adapter_model'): Uint8Array {
  const files: Record<string, [Uint8Array, { level: 0 }]> = {
    [`${archive}/data.pkl`]: [stateDictPickle(tensors, false), { level: 0 }],
    [`${archive}/byteorder`]: [enc.encode('little'), { level: 0 }],
    [`${archive}/version`]: [enc.encode('3\n'), { level: 0 }],
  };
  tensors.forEach((t, i) => (files[`${archive}/data/${i}`] = [u8(t.data), { level: 0 }]));
  return zipSync(files);
}

/** torch.save(state_dict, _use_new_zipfile_serialization=False): the legacy format. */
export function torchSaveLegacy(tensors: F32Tensor[]): Uint8Array {
  const magic = new Pickle().op(0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19).done(); // LONG1 0x1950a86a20f9469cfc6c
  const version = new Pickle().op(0x80, 0x02, 0x4d, 0xe9, 0x03).done(); // BININT2 1001
  const sysInfo = new Pickle().op(0x80, 0x02, 0x7d).str('little_endian').op(0x88, 0x73).done(); // {'little_endian': True}
  const keys = new Pickle().op(0x80, 0x02, 0x5d, 0x28);
  tensors.forEach((_, i) => keys.str(String(i)));
  const parts: Uint8Array[] = [magic, version, sysInfo, stateDictPickle(tensors, true), keys.op(0x65).done()]; // APPENDS
  for (const t of tensors) {
    const count = new Uint8Array(8);
    new DataView(count.buffer).setBigInt64(0, BigInt(t.data.length), true);
    parts.push(count, u8(t.data));
  }
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
