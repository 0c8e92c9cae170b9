/** Save text as a file through a Blob link (no server round trip). */
export function downloadText(filename: string, text: string, type: string) {
  downloadBlob(filename, new Blob([text], { type }));
}

/** Save bytes as a file through a Blob link. */
export function downloadBytes(filename: string, bytes: Uint8Array, type = 'application/octet-stream') {
  downloadBlob(filename, new Blob([bytes as Uint8Array<ArrayBuffer>], { type }));
}

/** Save a Blob as a file through a link (a model export: the Blob's parts stay out of the JS heap). */
export function downloadBlob(filename: string, blob: Blob) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
