// Pixel arithmetic of the Python runtime (agscm/runtime), rewritten number for number so the
// page's output equals `agscm perturb`'s: Pillow's grey conversion, float32 scaling, numpy's
// reflect padding to the size multiple, numpy's round-half-to-even, the 8-bit L-inf clamp, and
// the manifest's distortion measures. Pure functions: no DOM, so node's test runner checks them.

/** Pillow's `convert("L")`: ITU-R 601-2 luma in 16-bit fixed point, rounded. */
export function luma(r, g, b) {
  return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
}

/**
 * RGBA bytes (what a canvas gives) -> the model's 8-bit pixels, HWC with `channels` (1 or 3).
 * Returns the values, the alpha plane (null when every pixel is opaque: alpha is never
 * perturbed, only put back), and whether the source was grey (R = G = B everywhere).
 */
export function modelPixels(rgba, width, height, channels) {
  const count = width * height;
  const values = new Uint8Array(count * channels);
  const alpha = new Uint8Array(count);
  let grey = true;
  let opaque = true;
  for (let i = 0; i < count; i++) {
    const r = rgba[4 * i], g = rgba[4 * i + 1], b = rgba[4 * i + 2];
    alpha[i] = rgba[4 * i + 3];
    if (alpha[i] !== 255) opaque = false;
    if (r !== g || g !== b) grey = false;
    if (channels === 1) {
      values[i] = luma(r, g, b);
    } else {
      values[3 * i] = r;
      values[3 * i + 1] = g;
      values[3 * i + 2] = b;
    }
  }
  return { values, alpha: opaque ? null : alpha, grey };
}

/** The smallest multiple of `multiple` that is >= `size`. */
export function paddedLength(size, multiple) {
  return Math.ceil(size / multiple) * multiple;
}

/** Which source index numpy's `np.pad(..., mode="reflect")` puts at index `i` of an axis of `n`. */
export function reflectIndex(i, n) {
  if (n === 1) return 0;
  const period = 2 * (n - 1);
  const j = i % period;
  return j < n ? j : period - j;
}

/**
 * HWC uint8 -> float32 NCHW (N = 1) in [0, 1], reflect-padded on the bottom and right to the
 * size multiple, as `to_float` then `pad_to_multiple` do. Returns the data and its dims.
 */
export function toModelInput(values, width, height, channels, multiple) {
  const paddedHeight = paddedLength(height, multiple);
  const paddedWidth = paddedLength(width, multiple);
  const plane = paddedHeight * paddedWidth;
  const data = new Float32Array(channels * plane);
  for (let y = 0; y < paddedHeight; y++) {
    const row = reflectIndex(y, height) * width;
    for (let x = 0; x < paddedWidth; x++) {
      const source = (row + reflectIndex(x, width)) * channels;
      for (let c = 0; c < channels; c++) {
        // A Float32Array store rounds the exact quotient once: numpy's float32 division.
        data[c * plane + y * paddedWidth + x] = values[source + c] / 255;
      }
    }
  }
  return { data, dims: [1, channels, paddedHeight, paddedWidth] };
}

/** numpy's `rint`: round to nearest, ties to even. */
export function roundHalfEven(value) {
  const floor = Math.floor(value);
  const rest = value - floor;
  if (rest > 0.5) return floor + 1;
  if (rest < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/** The L-inf budget in 8-bit steps, as the runtime's `quantize` computes it. */
export function linfBudget(eps) {
  return Math.floor(eps * 255 + 1e-6);
}

/**
 * The model's float32 NCHW output (padded dims) -> 8-bit HWC pixels cropped to width x height:
 * `rint(x * float32(255))` clipped to [0, 255], then, for an L-inf model, kept within the
 * budget of the clean pixels (rounding alone can step past eps).
 */
export function quantize(output, paddedWidth, paddedHeight, width, height, channels, clean,
                         budget) {
  const plane = paddedHeight * paddedWidth;
  const values = new Uint8Array(width * height * channels);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < channels; c++) {
        const k = (y * width + x) * channels + c;
        // Math.fround of the exact double product = numpy's float32 multiplication.
        let level = roundHalfEven(Math.fround(output[c * plane + y * paddedWidth + x] * 255));
        level = Math.min(255, Math.max(0, level));
        if (budget !== null) {
          level = Math.min(clean[k] + budget, Math.max(clean[k] - budget, level));
        }
        values[k] = level;
      }
    }
  }
  return values;
}

/** The manifest's measures: L-inf and L2 on the [0, 1] scale over all values, PSNR in dB
 * (null when the images are identical). */
export function distortion(clean, adversarial) {
  let max = 0;
  let sum = 0;
  for (let i = 0; i < clean.length; i++) {
    const diff = (adversarial[i] - clean[i]) / 255;
    max = Math.max(max, Math.abs(diff));
    sum += diff * diff;
  }
  const mse = sum / clean.length;
  return { linf: max, l2: Math.sqrt(sum), psnr: mse > 0 ? 10 * Math.log10(1 / mse) : null };
}

/** HWC pixels (+ alpha) -> RGBA bytes for a canvas; grey is shown as grey. */
export function toRgba(values, width, height, channels, alpha = null) {
  const count = width * height;
  const rgba = new Uint8ClampedArray(count * 4);
  for (let i = 0; i < count; i++) {
    for (let c = 0; c < 3; c++) rgba[4 * i + c] = values[i * channels + (channels === 1 ? 0 : c)];
    rgba[4 * i + 3] = alpha ? alpha[i] : 255;
  }
  return rgba;
}

/**
 * The perturbation made visible: mid-grey is "unchanged", and `scale` 8-bit steps (the L-inf
 * budget, or the largest change for an L2 model) reach black or white. Returns the HWC pixels
 * and the amplification factor to print beside them.
 */
export function amplifiedPerturbation(clean, adversarial, budget) {
  let largest = 0;
  for (let i = 0; i < clean.length; i++) largest = Math.max(largest, Math.abs(adversarial[i] - clean[i]));
  const scale = Math.max(1, budget ?? largest);
  const gain = 127 / scale;
  const values = new Uint8Array(clean.length);
  for (let i = 0; i < clean.length; i++) {
    values[i] = Math.min(255, Math.max(0, Math.round(128 + (adversarial[i] - clean[i]) * gain)));
  }
  return { values, gain };
}
