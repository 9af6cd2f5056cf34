// A header block that cannot be decoded (RFC 7541): the connection ends with COMPRESSION_ERROR.
export class HpackError extends Error {
  constructor(message: string) {
    super(`HPACK: ${message}`);
    this.name = 'HpackError';
  }
}
