// A real FLAC file made in memory (16-bit mono, a sine tone), encoded with verbatim subframes: valid
// FLAC that any decoder plays, with no encoder to install.
const BLOCK = 4096

function crc8 (bytes: Buffer): number {
  let crc = 0
  for (const b of bytes) {
    crc ^= b
    for (let i = 0; i < 8; i++) crc = (crc & 0x80) !== 0 ? ((crc << 1) ^ 0x07) & 0xff : (crc << 1) & 0xff
  }
  return crc
}

function crc16 (bytes: Buffer): number {
  let crc = 0
  for (const b of bytes) {
    crc ^= b << 8
    for (let i = 0; i < 8; i++) crc = (crc & 0x8000) !== 0 ? ((crc << 1) ^ 0x8005) & 0xffff : (crc << 1) & 0xffff
  }
  return crc
}

/** `seconds` of a 440 Hz tone at 16 kHz as FLAC. */
export function flac (seconds = 0.5): Buffer {
  const rate = 16000
  const total = Math.round(seconds * rate)
  const info = Buffer.alloc(34)
  info.writeUInt16BE(BLOCK, 0)
  info.writeUInt16BE(BLOCK, 2)
  // 20 bits rate, 3 bits channels-1 (0), 5 bits bits-per-sample-1 (15), 36 bits total samples; MD5 0 = not computed
  info[10] = rate >> 12
  info[11] = (rate >> 4) & 0xff
  info[12] = ((rate & 0x0f) << 4) | (0 << 1) | (15 >> 4)
  info[13] = ((15 & 0x0f) << 4) | Math.floor(total / 2 ** 32)
  info.writeUInt32BE(total % 2 ** 32, 14)
  const parts: Buffer[] = [Buffer.from('fLaC'), Buffer.from([0x80, 0, 0, 34]), info]
  for (let frame = 0, start = 0; start < total; frame++, start += BLOCK) {
    const n = Math.min(BLOCK, total - start)
    // sync + fixed blocking; block size from the end of the header (0111), 16 kHz (0101); mono, 16 bits; frame number < 128 as one byte
    const header = Buffer.from([0xff, 0xf8, 0x75, 0x08, frame, (n - 1) >> 8, (n - 1) & 0xff])
    const body = Buffer.alloc(1 + n * 2)
    body[0] = 0x02 // verbatim subframe, no wasted bits
    for (let i = 0; i < n; i++) body.writeInt16BE(Math.round(8000 * Math.sin(2 * Math.PI * 440 * (start + i) / rate)), 1 + i * 2)
    const framed = Buffer.concat([header, Buffer.from([crc8(header)]), body])
    const footer = Buffer.alloc(2)
    footer.writeUInt16BE(crc16(framed))
    parts.push(framed, footer)
  }
  return Buffer.concat(parts)
}
