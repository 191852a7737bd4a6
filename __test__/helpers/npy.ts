/** A minimal .npy writer (version 1 header, C order, little-endian) for test files. */
export function npy(dtype: string, shape: number[], data: ArrayBufferView): Buffer {
  let header = `{'descr': '${dtype}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`
  header += ' '.repeat((64 - ((10 + header.length + 1) % 64)) % 64) + '\n'
  const pre = Buffer.alloc(10)
  Buffer.from('\x93NUMPY', 'latin1').copy(pre)
  pre[6] = 1
  pre.writeUInt16LE(header.length, 8)
  return Buffer.concat([pre, Buffer.from(header, 'latin1'), Buffer.from(data.buffer, data.byteOffset, data.byteLength)])
}
