// Per-forward-call parameters shared by every kernel of one pass (written once per chunk).
struct Params {
  rows: u32,        // token rows in the activation buffers of this call
  unused: u32,
  xRowOffset: u32,  // first input row a matmul reads (LM head reads only the rows it needs)
  kvLen: u32,       // 1 + the largest position in the call: how many keys any row may see
};

// Where each row of a call sits: its sequence's KV-cache slot and its position in that sequence.
// One sequence (prefill, decode) or many (batched decode) go through the same kernels.
struct RowInfo {
  slot: u32,
  pos: u32,
};
