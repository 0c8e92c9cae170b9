// Per-forward-call parameters shared by every kernel of one pass (written once per chunk).
struct Params {
  rows: u32,        // token rows in the activation buffers of this call
  startPos: u32,    // position of row 0 in the sequence (KV cache offset)
  xRowOffset: u32,  // first input row a matmul reads (LM head reads only the rows it needs)
  kvLen: u32,       // startPos + rows: keys visible to the last row
};
