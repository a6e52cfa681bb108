// The recognition backend is the host's: this interface is where a real engine plugs in.
// The built-in one is honest: it decodes WAV and audio/l16, measures the audio (and FLAC's length
// from its header), and says in its transcript that no speech model is configured.
import { readRange, type StoredBytes } from './storage/blobs.js'

export interface RecognitionResult {
  result_index: number
  results: Array<{ final: boolean, alternatives: Array<{ transcript: string, confidence: number }> }>
  audio_metrics?: { sampling_interval: number, accumulated: Record<string, unknown> }
}

export interface Recognizer {
  /**
   * Recognizes the stored audio (`audio.stream()` reads it, from a file or the fleet's database),
   * sent as `contentType`. Throws UnsupportedAudio for what it cannot decode.
   */
  recognize(audio: StoredBytes, contentType: string, signal?: AbortSignal): Promise<RecognitionResult>
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

/** FLAC's STREAMINFO block (always first): rate, channels and length, without decoding frames. */
function parseFlac (head: Buffer): Pcm {
  if (head.length < 42 || (head[4] & 0x7f) !== 0) throw new UnsupportedAudio('FLAC file without a STREAMINFO block')
  const info = head.subarray(8, 42)
  const sampleRate = (info[10] << 12) | (info[11] << 4) | (info[12] >> 4)
  const channels = ((info[12] >> 1) & 0x07) + 1
  const bitsPerSample = (((info[12] & 0x01) << 4) | (info[13] >> 4)) + 1
  const samples = (info[13] & 0x0f) * 2 ** 32 + info.readUInt32BE(14)
  // The size the samples have decoded, so the duration is samples / rate; the frames are not decoded.
  return { sampleRate, channels, bitsPerSample, dataOffset: 0, dataBytes: samples * channels * bitsPerSample / 8, bigEndian: false }
}

/** Level metrics of 16-bit PCM, read as a stream. */
async function pcmMetrics (audio: StoredBytes, pcm: Pcm): Promise<Record<string, number>> {
  if (pcm.bitsPerSample !== 16) return {}
  let n = 0
  let sum = 0
  let sumSq = 0
  let clipped = 0
  let peak = 0
  let odd: Buffer | null = null // a sample cut by a chunk boundary
  for await (const chunk of audio.stream(pcm.dataOffset, pcm.dataOffset + pcm.dataBytes)) {
    const buf: Buffer = odd === null ? chunk as Buffer : Buffer.concat([odd, chunk as Buffer])
    const whole = buf.length - (buf.length % 2)
    for (let i = 0; i < whole; i += 2) {
      const s = pcm.bigEndian ? buf.readInt16BE(i) : buf.readInt16LE(i)
      sum += s
      sumSq += s * s
      if (s >= 32767 || s <= -32768) clipped++
      const a = Math.abs(s)
      if (a > peak) peak = a
      n++
    }
    odd = whole < buf.length ? buf.subarray(whole) : null
  }
  if (n === 0) return { clipping_rate: 0, direct_current_offset: 0, signal_level_rms: 0, peak_level: 0 }
  return {
    clipping_rate: clipped / n,
    direct_current_offset: sum / n / 32768,
    signal_level_rms: Math.sqrt(sumSq / n) / 32768,
    peak_level: peak / 32768
  }
}

export class BuiltinRecognizer implements Recognizer {
  async recognize (audio: StoredBytes, contentType: string): Promise<RecognitionResult> {
    const size = audio.size
    const head = await readRange(audio, 0, 65536)
    const type = contentType.toLowerCase()
    let pcm: Pcm
    const flac = head.toString('ascii', 0, 4) === 'fLaC'
    if (head.toString('ascii', 0, 4) === 'RIFF') pcm = parseWav(head, size) // also WAV sent as application/json by the SDK
    else if (flac) pcm = parseFlac(head)
    else if (type.startsWith('audio/l16')) pcm = parseL16(type, size)
    else throw new UnsupportedAudio(`The built-in recognizer decodes audio/wav, audio/flac and audio/l16 only, not ${type.split(';')[0] || 'this audio'}; configure a recognizer for it.`)
    const bytesPerSecond = pcm.sampleRate * pcm.channels * (pcm.bitsPerSample / 8)
    const duration = bytesPerSecond > 0 ? pcm.dataBytes / bytesPerSecond : 0
    const metrics = flac ? {} : await pcmMetrics(audio, pcm) // FLAC frames are compressed: no levels without a decoder
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
