// A lossless PNG encoder for 8-bit grey, grey+alpha, RGB and RGBA pixels.
// Not canvas.toBlob: a canvas stores premultiplied RGBA, so it can neither write a one-channel
// PNG (what `agscm perturb` writes for a grey model) nor keep colour exact under alpha.
// Compression is the browser's own zlib (CompressionStream "deflate" is the zlib format).

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 (ISO 3309, as PNG and zip use), optionally continuing a running value. */
export function crc32(bytes, crc = 0) {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/** Compress with zlib framing (RFC 1950), as PNG's IDAT needs. */
export async function zlibCompress(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new CompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function paeth(a, b, c) {
  const p = a + b - c;
  const pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
  if (pa <= pb && pa <= pc) return a;
  return pb <= pc ? b : c;
}

function predict(type, a, b, c) {
  switch (type) {
    case 0: return 0;
    case 1: return a;
    case 2: return b;
    case 3: return (a + b) >> 1;
    default: return paeth(a, b, c);
  }
}

/**
 * Filter every row with the filter that minimises the sum of absolute signed residuals (the
 * heuristic the PNG specification recommends), prefixing each row with its filter type.
 */
export function filterRows(pixels, width, height, bytesPerPixel) {
  const stride = width * bytesPerPixel;
  const out = new Uint8Array(height * (stride + 1));
  const candidate = new Uint8Array(stride);
  const best = new Uint8Array(stride);
  for (let y = 0; y < height; y++) {
    const row = y * stride;
    let bestScore = Infinity;
    let bestType = 0;
    for (let type = 0; type < 5; type++) {
      let score = 0;
      for (let i = 0; i < stride; i++) {
        const x = pixels[row + i];
        const a = i >= bytesPerPixel ? pixels[row + i - bytesPerPixel] : 0;
        const b = y > 0 ? pixels[row - stride + i] : 0;
        const c = y > 0 && i >= bytesPerPixel ? pixels[row - stride + i - bytesPerPixel] : 0;
        const predicted = predict(type, a, b, c);
        const residual = (x - predicted) & 0xff;
        candidate[i] = residual;
        score += residual < 128 ? residual : 256 - residual;
      }
      if (score < bestScore) {
        bestScore = score;
        bestType = type;
        best.set(candidate);
      }
    }
    out[y * (stride + 1)] = bestType;
    out.set(best, y * (stride + 1) + 1);
  }
  return out;
}

function chunk(type, data) {
  const bytes = new Uint8Array(12 + data.length);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) bytes[4 + i] = type.charCodeAt(i);
  bytes.set(data, 8);
  view.setUint32(8 + data.length, crc32(bytes.subarray(4, 8 + data.length)));
  return bytes;
}

/**
 * Encode HWC 8-bit pixels with `channels` (1 or 3) and an optional alpha plane as PNG:
 * colour type 0 (grey), 4 (grey + alpha), 2 (RGB) or 6 (RGBA). Returns a Blob.
 */
export async function encodePng(values, width, height, channels, alpha = null) {
  const samples = channels + (alpha ? 1 : 0);
  let pixels = values;
  if (alpha) {
    pixels = new Uint8Array(width * height * samples);
    for (let i = 0; i < width * height; i++) {
      for (let c = 0; c < channels; c++) pixels[i * samples + c] = values[i * channels + c];
      pixels[i * samples + channels] = alpha[i];
    }
  }
  const colourType = { 1: 0, 2: 4, 3: 2, 4: 6 }[samples];
  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  header.set([8, colourType, 0, 0, 0], 8); // bit depth, colour type, deflate, adaptive, no interlace
  const signature = new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]);
  const data = await zlibCompress(filterRows(pixels, width, height, samples));
  return new Blob([signature, chunk("IHDR", header), chunk("IDAT", data), chunk("IEND", new Uint8Array())],
                  { type: "image/png" });
}
