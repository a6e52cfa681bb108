// The recognition backend is the host's: this interface is where a real engine plugs in.
// The built-in one is honest: it decodes WAV and audio/l16, measures the audio, and says in its
// transcript that no speech model is configured.
import { open } from 'node:fs/promises'

export interface RecognitionResult {
  result_index: number
  results: Array<{ final: boolean, alternatives: Array<{ transcript: string, confidence: number }> }>
  audio_metrics?: { sampling_interval: number, accumulated: Record<string, unknown> }
}

export interface Recognizer {
  /** Recognizes the audio in `path`, sent as `contentType`. Throws UnsupportedAudio for what it cannot decode. */
  recognize(path: string, contentType: string, signal?: AbortSignal): Promise<RecognitionResult>
}

export class UnsupportedAudio extends Error {}
/** Audio that claims a format it does not follow (a WAV header cut short): the client's mistake, a 400. */
export class MalformedAudio extends UnsupportedAudio {}

/** A PCM fmt chunk carries 16 bytes: format, channels, rate, byte rate, block align, bits per sample. */
const WAV_FMT_BYTES = 16

interface Pcm { sampleRate: number, channels: number, bitsPerSample: number, dataOffset: number, dataBytes: number, bigEndian: boolean }

/** Reads a RIFF/WAVE header: the fmt and data chunks. Every read is bounded by what arrived. */
function parseWav (head: Buffer, fileSize: number): Pcm {
  if (head.length < 12 || head.toString('ascii', 8, 12) !== 'WAVE') throw new MalformedAudio('The WAV header is cut short or is not RIFF/WAVE: send the whole file.')
  let offset = 12
  let fmt: Omit<Pcm, 'dataOffset' | 'dataBytes'> | null = null
  while (offset + 8 <= head.length) {
    const id = head.toString('ascii', offset, offset + 4)
    const size = head.readUInt32LE(offset + 4)
    if (id === 'fmt ') {
      if (size < WAV_FMT_BYTES || offset + 8 + WAV_FMT_BYTES > head.length) throw new MalformedAudio('The WAV fmt chunk is cut short: send the whole file.')
      const format = head.readUInt16LE(offset + 8)
      if (format !== 1 && format !== 0xfffe) throw new UnsupportedAudio(`WAV format ${format} is not PCM`)
      fmt = { channels: head.readUInt16LE(offset + 10), sampleRate: head.readUInt32LE(offset + 12), bitsPerSample: head.readUInt16LE(offset + 22), bigEndian: false }
    } else if (id === 'data') {
      if (fmt === null) throw new UnsupportedAudio('WAV data chunk before fmt chunk')
      const dataOffset = offset + 8
      return { ...fmt, dataOffset, dataBytes: Math.min(size, fileSize - dataOffset) }
    }
    offset += 8 + size + (size % 2)
  }
  if (head.length < 65536) throw new MalformedAudio('The WAV file has no data chunk: send the whole file.')
  throw new UnsupportedAudio('WAV header has no data chunk in its first 64 KiB')
}

/** audio/l16;rate=16000;channels=1 (big-endian 16-bit PCM, RFC 2586). */
function parseL16 (contentType: string, fileSize: number): Pcm {
  const params = new Map(contentType.split(';').slice(1).map((p) => {
    const [k, v] = p.split('=')
    return [k.trim().toLowerCase(), (v ?? '').trim()]
  }))
  const sampleRate = Number(params.get('rate'))
  if (!Number.isInteger(sampleRate) || sampleRate <= 0) throw new UnsupportedAudio('audio/l16 needs a rate parameter, e.g. audio/l16;rate=16000')
  const channels = Number(params.get('channels') ?? 1)
  const endianness = params.get('endianness') ?? 'big-endian'
  return { sampleRate, channels, bitsPerSample: 16, dataOffset: 0, dataBytes: fileSize, bigEndian: endianness !== 'little-endian' }
}

/** Level metrics of 16-bit PCM, read in 64 KiB chunks. */
async function pcmMetrics (path: string, pcm: Pcm): Promise<Record<string, number>> {
  if (pcm.bitsPerSample !== 16) return {}
  const handle = await open(path, 'r')
  try {
    const buf = Buffer.alloc(65536)
    let position = pcm.dataOffset
    const end = pcm.dataOffset + pcm.dataBytes
    let n = 0
    let sum = 0
    let sumSq = 0
    let clipped = 0
    let peak = 0
    while (position + 1 < end) {
      const { bytesRead } = await handle.read(buf, 0, Math.min(buf.length, end - position), position)
      if (bytesRead < 2) break
      for (let i = 0; i + 1 < bytesRead; i += 2) {
        const s = pcm.bigEndian ? buf.readInt16BE(i) : buf.readInt16LE(i)
        sum += s
        sumSq += s * s
        if (s >= 32767 || s <= -32768) clipped++
        const a = Math.abs(s)
        if (a > peak) peak = a
        n++
      }
      position += bytesRead - (bytesRead % 2)
    }
    if (n === 0) return { clipping_rate: 0, direct_current_offset: 0, signal_level_rms: 0, peak_level: 0 }
    return {
      clipping_rate: clipped / n,
      direct_current_offset: sum / n / 32768,
      signal_level_rms: Math.sqrt(sumSq / n) / 32768,
      peak_level: peak / 32768
    }
  } finally {
    await handle.close()
  }
}

export class BuiltinRecognizer implements Recognizer {
  async recognize (path: string, contentType: string): Promise<RecognitionResult> {
    const handle = await open(path, 'r')
    let head: Buffer
    let size: number
    try {
      size = (await handle.stat()).size
      head = Buffer.alloc(Math.min(size, 65536))
      await handle.read(head, 0, head.length, 0)
    } finally {
      await handle.close()
    }
    const type = contentType.toLowerCase()
    let pcm: Pcm
    if (head.toString('ascii', 0, 4) === 'RIFF') pcm = parseWav(head, size) // also WAV sent as application/json by the SDK
    else if (type.startsWith('audio/l16')) pcm = parseL16(type, size)
    else throw new UnsupportedAudio(`The built-in recognizer decodes audio/wav and audio/l16 only, not ${type.split(';')[0] || 'this audio'}; configure a recognizer for it.`)
    const bytesPerSecond = pcm.sampleRate * pcm.channels * (pcm.bitsPerSample / 8)
    const duration = bytesPerSecond > 0 ? pcm.dataBytes / bytesPerSecond : 0
    const metrics = await pcmMetrics(path, pcm)
    return {
      result_index: 0,
      results: [{
        final: true,
        alternatives: [{ transcript: `[no speech model is configured: ${duration.toFixed(2)} s of audio received] `, confidence: 0 }]
      }],
      audio_metrics: {
        sampling_interval: duration,
        accumulated: { final: true, end_time: Number(duration.toFixed(3)), sample_rate: pcm.sampleRate, channels: pcm.channels, ...metrics }
      }
    }
  }
}

/** Audio format details for acoustic resources. */
export function describeAudio (contentType: string): { type: string, codec: string, frequency?: number } {
  const base = contentType.split(';')[0].trim().toLowerCase()
  const rate = /rate=(\d+)/.exec(contentType)?.[1]
  return { type: 'audio', codec: base.replace(/^audio\//, ''), ...(rate !== undefined ? { frequency: Number(rate) } : {}) }
}
